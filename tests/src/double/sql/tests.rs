//! Unit tests of the tiny SQL fake: statements, transactions, request bodies.

use super::*;

fn st(sql: &str, params: Vec<Value>) -> Stmt {
    Stmt {
        sql: sql.into(),
        params,
    }
}

#[test]
fn create_insert_count_select() {
    let mut db = Db::default();
    let r = db.execute(
        &[
            st(
                "CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)",
                vec![],
            ),
            st("INSERT INTO foo(name) VALUES(?)", vec![json!("fiona")]),
            st("insert into foo(id, name) values(5, 'bob')", vec![]),
            st("CREATE TABLE IF NOT EXISTS foo (x)", vec![]),
            st("CREATE TABLE foo (x)", vec![]),
            st("UPDATE foo SET name = 'x'", vec![]),
        ],
        false,
    );
    assert_eq!(r[0], json!({}));
    assert_eq!(r[1], json!({"last_insert_id": 1, "rows_affected": 1}));
    assert_eq!(r[2], json!({"last_insert_id": 5, "rows_affected": 1}));
    assert_eq!(r[3], json!({}));
    assert_eq!(r[4], json!({"error": "table foo already exists"}));
    assert!(
        r[5]["error"]
            .as_str()
            .is_some_and(|e| e.contains("unsupported"))
    );
    let q = db.query(&[
        st("SELECT COUNT(*) FROM foo", vec![]),
        st("SELECT * FROM foo", vec![]),
        st("SELECT * FROM bar", vec![]),
    ]);
    assert_eq!(
        q[0],
        json!({"columns": ["COUNT(*)"], "types": ["integer"], "values": [[2]]})
    );
    assert_eq!(
        q[1],
        json!({"columns": ["id", "name"], "types": ["integer", "text"], "values": [[1, "fiona"], [5, "bob"]]})
    );
    assert_eq!(q[2], json!({"error": "no such table: bar"}));
}

#[test]
fn transaction_rolls_back() {
    let mut db = Db::default();
    let r = db.execute(
        &[
            st("CREATE TABLE t (a)", vec![]),
            st("INSERT INTO nope VALUES(1)", vec![]),
        ],
        true,
    );
    assert_eq!(r.len(), 2);
    assert!(db.tables.is_empty());
}

#[test]
fn body_forms() {
    let b = br#"["CREATE TABLE t (a)", ["INSERT INTO t(a) VALUES(?)", 7]]"#;
    let s = parse_body(b).expect("parse");
    assert_eq!(s[1].params, vec![json!(7)]);
    assert!(parse_body(b"{}").is_err());
}
