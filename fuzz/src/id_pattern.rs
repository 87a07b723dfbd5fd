//! A reference for resource id patterns, written from their documentation rather than from the
//! matcher: literals, `*` (a non-empty run without `:`), `**` (a non-empty run), `{name}` (a captured
//! `*`) and `{name**}` (a captured `**`); a pattern matches the whole id, and each run takes the
//! shortest text that lets the rest of the pattern match (leftmost-shortest, so `{a}-x-{b}` splits
//! `1-x-2-x-3` as `1` and `2-x-3`).
//!
//! Parsing follows the documented rules: braces do not nest and have no escapes, capture names are
//! ASCII letters, digits and `_`, a name appears once, at most [`MAX_CAPTURES`] captures, and two runs
//! must be separated by literal text.
//!
//! Matching is a dynamic program over (token, position), linear in the id for each token, so the
//! reference itself never backtracks.

use gatehouse::policy::MAX_CAPTURES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    Run {
        colons: bool,
        capture: Option<usize>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefPattern {
    tokens: Vec<Token>,
    names: Vec<String>,
}

impl RefPattern {
    pub fn parse(source: &str) -> Result<RefPattern, String> {
        let mut tokens = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let chars: Vec<char> = source.chars().collect();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            match c {
                '}' => return Err("'}' before any '{'".to_owned()),
                '{' => {
                    let close = chars[i + 1..]
                        .iter()
                        .position(|&c| c == '}')
                        .ok_or("unclosed '{'")?;
                    let inner: String = chars[i + 1..i + 1 + close].iter().collect();
                    let (name, colons) = match inner.strip_suffix("**") {
                        Some(name) => (name.to_owned(), true),
                        None => (inner, false),
                    };
                    let valid = !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        return Err(format!("bad capture name {name:?}"));
                    }
                    if names.contains(&name) {
                        return Err(format!("capture {name:?} twice"));
                    }
                    if names.len() == MAX_CAPTURES {
                        return Err("too many captures".to_owned());
                    }
                    names.push(name);
                    push_run(&mut tokens, colons, Some(names.len() - 1))?;
                    i += close + 2;
                }
                '*' => {
                    let colons = chars.get(i + 1) == Some(&'*');
                    push_run(&mut tokens, colons, None)?;
                    i += if colons { 2 } else { 1 };
                }
                c => {
                    tokens.push(Token::Char(c));
                    i += 1;
                }
            }
        }
        Ok(RefPattern { tokens, names })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The captured values in name order, if the whole of `id` matches.
    pub fn captures(&self, id: &str) -> Option<Vec<String>> {
        let id: Vec<char> = id.chars().collect();
        let n = id.len();
        // first_colon[p]: the first position at or after p holding ':' (n when none).
        let mut first_colon = vec![n; n + 1];
        for p in (0..n).rev() {
            first_colon[p] = if id[p] == ':' { p } else { first_colon[p + 1] };
        }
        // can[t][p]: tokens t.. match id[p..] exactly.
        // next_true[t][q]: the smallest q' >= q with can[t][q'] (n + 1 when none).
        let count = self.tokens.len();
        let mut can = vec![vec![false; n + 1]; count + 1];
        let mut next_true = vec![Vec::new(); count + 1];
        can[count][n] = true;
        next_true[count] = next_row(&can[count]);
        for t in (0..count).rev() {
            for p in 0..=n {
                can[t][p] = match self.tokens[t] {
                    Token::Char(c) => p < n && id[p] == c && can[t + 1][p + 1],
                    Token::Run { colons, .. } => {
                        // The run takes id[p..q] for some q in p+1..=limit.
                        let limit = if colons { n } else { first_colon[p] };
                        p < n && next_true[t + 1][p + 1] <= limit
                    }
                };
            }
            next_true[t] = next_row(&can[t]);
        }
        if !can[0][0] {
            return None;
        }
        let mut values = vec![String::new(); self.names.len()];
        let mut p = 0;
        for (t, token) in self.tokens.iter().enumerate() {
            match *token {
                Token::Char(_) => p += 1,
                Token::Run { capture, .. } => {
                    // Shortest first: the first end after p from which the rest matches.
                    let q = next_true[t + 1][p + 1];
                    if let Some(index) = capture {
                        values[index] = id[p..q].iter().collect();
                    }
                    p = q;
                }
            }
        }
        debug_assert_eq!(p, n);
        Some(values)
    }
}

fn push_run(tokens: &mut Vec<Token>, colons: bool, capture: Option<usize>) -> Result<(), String> {
    if matches!(tokens.last(), Some(Token::Run { .. })) {
        return Err("two runs without literal text between them".to_owned());
    }
    tokens.push(Token::Run { colons, capture });
    Ok(())
}

fn next_row(can: &[bool]) -> Vec<usize> {
    let n = can.len() - 1;
    let mut next = vec![n + 1; n + 2];
    for q in (0..=n).rev() {
        next[q] = if can[q] { q } else { next[q + 1] };
    }
    next
}
