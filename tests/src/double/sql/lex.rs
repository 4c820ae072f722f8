//! Tokens of the SQL fake and the cursor its statements are parsed with: words,
//! quoted strings, numbers and symbols, and the few matching helpers the
//! grammar in `sql.rs` needs. Errors read like SQLite's ("near ...: syntax error").

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Word(String),
    Str(String),
    Num(String),
    Sym(char),
}

pub(super) fn tokenize(sql: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unrecognized token: \"'\"".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c == '"' || c == '`' || c == '[' {
            let close = if c == '[' { ']' } else { c };
            let start = i + 1;
            let end = chars[start..]
                .iter()
                .position(|&ch| ch == close)
                .ok_or_else(|| format!("unrecognized token: \"{c}\""))?;
            out.push(Tok::Word(chars[start..start + end].iter().collect()));
            i = start + end + 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            out.push(Tok::Sym(c));
            i += 1;
        }
    }
    while out.last() == Some(&Tok::Sym(';')) {
        out.pop();
    }
    Ok(out)
}

/// A cursor over tokens with the small set of matching helpers the grammar needs.
pub(super) struct P {
    pub(super) toks: Vec<Tok>,
    pub(super) pos: usize,
}

impl P {
    pub(super) fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    pub(super) fn kw(&mut self, word: &str) -> bool {
        if let Some(Tok::Word(w)) = self.peek()
            && w.eq_ignore_ascii_case(word)
        {
            self.pos += 1;
            return true;
        }
        false
    }
    pub(super) fn sym(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Sym(c)) {
            self.pos += 1;
            return true;
        }
        false
    }
    pub(super) fn near(&self) -> String {
        match self.peek() {
            None => "incomplete input".into(),
            Some(t) => format!("near \"{}\": syntax error", tok_text(t)),
        }
    }
    pub(super) fn expect_kw(&mut self, word: &str) -> Result<(), String> {
        if self.kw(word) {
            Ok(())
        } else {
            Err(self.near())
        }
    }
    pub(super) fn expect_sym(&mut self, c: char) -> Result<(), String> {
        if self.sym(c) {
            Ok(())
        } else {
            Err(self.near())
        }
    }
    pub(super) fn ident(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.near()),
        }
    }
    pub(super) fn done(&self) -> Result<(), String> {
        if self.pos == self.toks.len() {
            Ok(())
        } else {
            Err(self.near())
        }
    }
}

pub(super) fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Word(w) | Tok::Num(w) => w.clone(),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Sym(c) => c.to_string(),
    }
}
