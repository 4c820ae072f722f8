//! A deliberately tiny stand-in for SQLite: just enough SQL for a supervisor's
//! smoke checks (create a table, insert rows with parameters, count them, read them
//! back). Anything else answers like a SQLite error does in rqlite: an HTTP 200 whose
//! result carries `"error"`, so clients exercise their error path.
//!
//! Supported statements (keywords case-insensitive):
//! `CREATE TABLE [IF NOT EXISTS] t (col type ..., ...)`,
//! `INSERT INTO t [(col, ...)] VALUES (v, ...)[, (...)]` with `?` parameters or literals,
//! `SELECT COUNT(*) FROM t`, `SELECT * FROM t`, `SELECT <integer>`,
//! `DROP TABLE [IF EXISTS] t`, `DELETE FROM t` (no WHERE).

mod lex;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use lex::{P, Tok, tok_text, tokenize};

/// One SQL statement as rqlite's HTTP API carries it: the text plus positional
/// parameters (from the `["INSERT ... (?)", 1]` form).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stmt {
    pub sql: String,
    pub params: Vec<Value>,
}

/// Parses rqlite's request body: a JSON array whose items are either a statement
/// string or an array `[sql, param, ...]`.
pub fn parse_body(body: &[u8]) -> Result<Vec<Stmt>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Array(items) = v else {
        return Err("request body must be a JSON array".into());
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(sql) => Ok(Stmt {
                sql,
                params: vec![],
            }),
            Value::Array(mut parts) => {
                if parts.is_empty() {
                    return Err("empty statement array".into());
                }
                let Value::String(sql) = parts.remove(0) else {
                    return Err("statement array must start with the SQL string".into());
                };
                Ok(Stmt { sql, params: parts })
            }
            _ => Err("each statement must be a string or an array".into()),
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Column {
    pub name: String,
    /// Declared type, lower-cased as rqlite reports it in `types` ("" when none).
    pub decl_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    /// Index of an `INTEGER PRIMARY KEY` column, which aliases the rowid.
    pub rowid_column: Option<usize>,
    pub last_rowid: i64,
}

/// The whole fake database: tables by lower-cased name.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Db {
    pub tables: BTreeMap<String, Table>,
}

/// Words that end a column's type name in a column definition.
const CONSTRAINT_WORDS: &[&str] = &[
    "PRIMARY",
    "NOT",
    "NULL",
    "UNIQUE",
    "DEFAULT",
    "CHECK",
    "REFERENCES",
    "COLLATE",
    "GENERATED",
    "CONSTRAINT",
    "AS",
];

fn is_constraint_word(w: &str) -> bool {
    CONSTRAINT_WORDS.iter().any(|c| c.eq_ignore_ascii_case(w))
}

/// What a statement did, in rqlite's result vocabulary.
enum Outcome {
    Exec {
        last_insert_id: i64,
        rows_affected: i64,
    },
    Rows {
        columns: Vec<String>,
        types: Vec<String>,
        values: Vec<Vec<Value>>,
    },
}

impl Db {
    fn table_mut(&mut self, name: &str) -> Result<&mut Table, String> {
        self.tables
            .get_mut(&name.to_lowercase())
            .ok_or_else(|| format!("no such table: {name}"))
    }

    fn table(&self, name: &str) -> Result<&Table, String> {
        self.tables
            .get(&name.to_lowercase())
            .ok_or_else(|| format!("no such table: {name}"))
    }

    fn run(&mut self, stmt: &Stmt) -> Result<Outcome, String> {
        let toks = tokenize(&stmt.sql)?;
        let mut p = P { toks, pos: 0 };
        if p.kw("CREATE") {
            self.create(&mut p)
        } else if p.kw("INSERT") {
            self.insert(&mut p, &stmt.params)
        } else if p.kw("SELECT") {
            self.select(&mut p)
        } else if p.kw("DROP") {
            p.expect_kw("TABLE")?;
            let if_exists = p.kw("IF") && {
                p.expect_kw("EXISTS")?;
                true
            };
            let name = p.ident()?;
            p.done()?;
            if self.tables.remove(&name.to_lowercase()).is_none() && !if_exists {
                return Err(format!("no such table: {name}"));
            }
            Ok(Outcome::Exec {
                last_insert_id: 0,
                rows_affected: 0,
            })
        } else if p.kw("DELETE") {
            p.expect_kw("FROM")?;
            let name = p.ident()?;
            if p.peek().is_some() {
                return Err(unsupported(&stmt.sql));
            }
            let t = self.table_mut(&name)?;
            let n = t.rows.len() as i64;
            t.rows.clear();
            Ok(Outcome::Exec {
                last_insert_id: t.last_rowid,
                rows_affected: n,
            })
        } else if p.toks.is_empty() {
            Err("empty statement".into())
        } else {
            Err(unsupported(&stmt.sql))
        }
    }

    fn create(&mut self, p: &mut P) -> Result<Outcome, String> {
        p.expect_kw("TABLE")?;
        let if_not_exists = if p.kw("IF") {
            p.expect_kw("NOT")?;
            p.expect_kw("EXISTS")?;
            true
        } else {
            false
        };
        let name = p.ident()?;
        p.expect_sym('(')?;
        let mut columns = Vec::new();
        let mut rowid_column = None;
        loop {
            // One column definition or table constraint, up to a top-level ',' or ')'.
            let mut depth = 0;
            let start = p.pos;
            while let Some(t) = p.peek() {
                match t {
                    Tok::Sym('(') => depth += 1,
                    Tok::Sym(')') if depth == 0 => break,
                    Tok::Sym(')') => depth -= 1,
                    Tok::Sym(',') if depth == 0 => break,
                    _ => {}
                }
                p.pos += 1;
            }
            let def = &p.toks[start..p.pos];
            let words: Vec<String> = def.iter().map(tok_text).collect();
            let Some(first) = words.first() else {
                return Err(p.near());
            };
            let is_table_constraint = ["PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "CONSTRAINT"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(first));
            if !is_table_constraint {
                let Tok::Word(col) = &def[0] else {
                    return Err(format!("near \"{first}\": syntax error"));
                };
                let type_words: Vec<&str> = words[1..]
                    .iter()
                    .take_while(|w| !is_constraint_word(w) && w.as_str() != "(")
                    .map(String::as_str)
                    .collect();
                let decl_type = type_words.join(" ").to_lowercase();
                let upper = words.join(" ").to_uppercase();
                if decl_type == "integer" && upper.contains("PRIMARY KEY") {
                    rowid_column = Some(columns.len());
                }
                columns.push(Column {
                    name: col.clone(),
                    decl_type,
                });
            }
            if p.sym(',') {
                continue;
            }
            p.expect_sym(')')?;
            break;
        }
        p.done()?;
        let key = name.to_lowercase();
        if self.tables.contains_key(&key) {
            if if_not_exists {
                return Ok(Outcome::Exec {
                    last_insert_id: 0,
                    rows_affected: 0,
                });
            }
            return Err(format!("table {name} already exists"));
        }
        self.tables.insert(
            key,
            Table {
                name,
                columns,
                rows: vec![],
                rowid_column,
                last_rowid: 0,
            },
        );
        Ok(Outcome::Exec {
            last_insert_id: 0,
            rows_affected: 0,
        })
    }

    fn insert(&mut self, p: &mut P, params: &[Value]) -> Result<Outcome, String> {
        p.expect_kw("INTO")?;
        let name = p.ident()?;
        let mut cols: Option<Vec<String>> = None;
        if p.sym('(') {
            let mut list = vec![p.ident()?];
            while p.sym(',') {
                list.push(p.ident()?);
            }
            p.expect_sym(')')?;
            cols = Some(list);
        }
        p.expect_kw("VALUES")?;
        let mut next_param = 0;
        let mut tuples = Vec::new();
        loop {
            p.expect_sym('(')?;
            let mut vals = Vec::new();
            loop {
                let negative = p.sym('-');
                let v = match p.peek().cloned() {
                    Some(Tok::Sym('?')) => {
                        p.pos += 1;
                        let v = params.get(next_param).cloned().unwrap_or(Value::Null);
                        next_param += 1;
                        v
                    }
                    Some(Tok::Str(s)) => {
                        p.pos += 1;
                        Value::String(s)
                    }
                    Some(Tok::Num(n)) => {
                        p.pos += 1;
                        let text = if negative { format!("-{n}") } else { n };
                        match text.parse::<i64>() {
                            Ok(i) => json!(i),
                            Err(_) => text
                                .parse::<f64>()
                                .map(|f| json!(f))
                                .map_err(|_| p.near())?,
                        }
                    }
                    Some(Tok::Word(w)) if w.eq_ignore_ascii_case("NULL") => {
                        p.pos += 1;
                        Value::Null
                    }
                    _ => return Err(p.near()),
                };
                vals.push(v);
                if !p.sym(',') {
                    break;
                }
            }
            p.expect_sym(')')?;
            tuples.push(vals);
            if !p.sym(',') {
                break;
            }
        }
        p.done()?;
        let table = self.table_mut(&name)?;
        let targets: Vec<usize> = match &cols {
            None => (0..table.columns.len()).collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    table
                        .columns
                        .iter()
                        .position(|c| c.name.eq_ignore_ascii_case(n))
                        .ok_or_else(|| format!("table {} has no column named {n}", table.name))
                })
                .collect::<Result<_, _>>()?,
        };
        let mut affected = 0;
        for vals in tuples {
            if vals.len() != targets.len() {
                return Err(match &cols {
                    None => format!(
                        "table {} has {} columns but {} values were supplied",
                        table.name,
                        targets.len(),
                        vals.len()
                    ),
                    Some(_) => format!("{} values for {} columns", vals.len(), targets.len()),
                });
            }
            let mut row = vec![Value::Null; table.columns.len()];
            for (i, v) in targets.iter().zip(vals) {
                row[*i] = v;
            }
            let rowid = match table.rowid_column.map(|i| row[i].clone()) {
                Some(Value::Number(n)) if n.is_i64() => {
                    let id = n.as_i64().unwrap_or_default();
                    if let Some(ri) = table.rowid_column
                        && table.rows.iter().any(|r| r[ri] == json!(id))
                    {
                        return Err(format!(
                            "UNIQUE constraint failed: {}.{}",
                            table.name, table.columns[ri].name
                        ));
                    }
                    id
                }
                _ => table.last_rowid.max(0) + 1,
            };
            if let Some(ri) = table.rowid_column {
                row[ri] = json!(rowid);
            }
            table.last_rowid = table.last_rowid.max(rowid);
            table.rows.push(row);
            affected += 1;
        }
        Ok(Outcome::Exec {
            last_insert_id: table.last_rowid,
            rows_affected: affected,
        })
    }

    fn select(&mut self, p: &mut P) -> Result<Outcome, String> {
        if let Some(Tok::Num(n)) = p.peek().cloned() {
            p.pos += 1;
            p.done()?;
            let v = n.parse::<i64>().map(|i| json!(i)).unwrap_or(json!(n));
            return Ok(Outcome::Rows {
                columns: vec![n],
                types: vec![String::new()],
                values: vec![vec![v]],
            });
        }
        if p.kw("COUNT") {
            p.expect_sym('(')?;
            p.expect_sym('*')?;
            p.expect_sym(')')?;
            p.expect_kw("FROM")?;
            let name = p.ident()?;
            p.done()?;
            let t = self.table(&name)?;
            return Ok(Outcome::Rows {
                columns: vec!["COUNT(*)".into()],
                types: vec!["integer".into()],
                values: vec![vec![json!(t.rows.len())]],
            });
        }
        if p.sym('*') {
            p.expect_kw("FROM")?;
            let name = p.ident()?;
            if p.peek().is_some() {
                return Err(format!(
                    "rq4d test double: only 'SELECT * FROM {name}' without clauses is supported"
                ));
            }
            let t = self.table(&name)?;
            return Ok(Outcome::Rows {
                columns: t.columns.iter().map(|c| c.name.clone()).collect(),
                types: t.columns.iter().map(|c| c.decl_type.clone()).collect(),
                values: t.rows.clone(),
            });
        }
        Err("rq4d test double: only SELECT COUNT(*) FROM t, SELECT * FROM t and SELECT <integer> are supported".into())
    }

    /// Runs statements the way `/db/execute` does and returns rqlite's `results`
    /// array. With `transaction`, the first error stops the batch and undoes it.
    pub fn execute(&mut self, stmts: &[Stmt], transaction: bool) -> Vec<Value> {
        let backup = transaction.then(|| self.clone());
        let mut results = Vec::new();
        for s in stmts {
            match self.run(s) {
                Ok(Outcome::Exec {
                    last_insert_id,
                    rows_affected,
                }) => {
                    let mut m = Map::new();
                    if last_insert_id != 0 {
                        m.insert("last_insert_id".into(), json!(last_insert_id));
                    }
                    if rows_affected != 0 {
                        m.insert("rows_affected".into(), json!(rows_affected));
                    }
                    results.push(Value::Object(m));
                }
                Ok(Outcome::Rows { .. }) => results.push(json!({})),
                Err(e) => {
                    results.push(json!({ "error": e }));
                    if let Some(b) = &backup {
                        *self = b.clone();
                        break;
                    }
                }
            }
        }
        results
    }

    /// Runs statements the way `/db/query` does. Statements that would change the
    /// database are refused, as rqlite refuses them on the query endpoint.
    pub fn query(&self, stmts: &[Stmt]) -> Vec<Value> {
        stmts
            .iter()
            .map(|s| {
                let first = s.sql.split_whitespace().next().unwrap_or("").to_uppercase();
                if first != "SELECT" {
                    return json!({ "error": "attempt to change database via query operation" });
                }
                let mut scratch = self.clone();
                match scratch.run(s) {
                    Ok(Outcome::Rows {
                        columns,
                        types,
                        values,
                    }) => {
                        let mut m = Map::new();
                        m.insert("columns".into(), json!(columns));
                        m.insert("types".into(), json!(types));
                        if !values.is_empty() {
                            m.insert("values".into(), json!(values));
                        }
                        Value::Object(m)
                    }
                    Ok(Outcome::Exec { .. }) => json!({}),
                    Err(e) => json!({ "error": e }),
                }
            })
            .collect()
    }

    /// True when a batch contains only statements that cannot change the database;
    /// used to decide whether `/db/query` may be served locally.
    pub fn read_only(stmts: &[Stmt]) -> bool {
        stmts.iter().all(|s| {
            s.sql
                .split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("SELECT"))
        })
    }
}

fn unsupported(sql: &str) -> String {
    format!("rq4d test double: unsupported statement: {sql}")
}

#[cfg(test)]
mod tests;
