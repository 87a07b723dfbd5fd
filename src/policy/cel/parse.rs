//! Parsing a condition's source into a program, after refusing a source too large or too deeply
//! nested to parse at a bounded cost, and translating the parser's errors into [`CelError::Syntax`].

use ::cel::Program;

use super::eval::ENV;
use super::{CelError, MAX_BRACKET_DEPTH, MAX_SOURCE_BYTES, Position};

/// Parses `source`, expanding the standard macros.
pub(super) fn parse(source: &str) -> Result<Program, CelError> {
    check_source_size(source)?;
    ENV.compile(source).map_err(|errors| {
        let first = errors.errors.first();
        let message = first.map_or_else(|| "invalid expression".to_owned(), |e| e.msg.clone());
        let message = message
            .strip_prefix("Syntax error: ")
            .map_or_else(|| lower_first(&message), str::to_owned);
        let position = first.and_then(|e| {
            Some(Position {
                line: usize::try_from(e.pos.0).ok().filter(|l| *l > 0)?,
                column: usize::try_from(e.pos.1).ok().filter(|c| *c > 0)?,
            })
        });
        CelError::Syntax { message, position }
    })
}

/// Refuses a source the parser would take long or deep recursion to read.
fn check_source_size(source: &str) -> Result<(), CelError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(CelError::TooLarge {
            what: format!("{} bytes, at most {MAX_SOURCE_BYTES}", source.len()),
        });
    }
    let mut depth = 0usize;
    for byte in source.bytes() {
        match byte {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_BRACKET_DEPTH {
                    return Err(CelError::TooLarge {
                        what: format!("brackets nest deeper than {MAX_BRACKET_DEPTH}"),
                    });
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn lower_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::compile_error;
    use super::super::{CelError, Position};

    #[test]
    fn syntax_errors() {
        let error = compile_error("principal.id == ");
        assert!(matches!(error, CelError::Syntax { .. }), "{error:?}");
        assert_eq!(
            error.position(),
            Some(Position {
                line: 1,
                column: 17
            })
        );
        assert!(
            error.to_string().starts_with("syntax error at column 17: "),
            "{error}"
        );
        assert!(matches!(
            compile_error("context.?x"),
            CelError::Syntax { .. }
        ));
    }
}
