//! The operator text syntax: a sum of optionally scaled atoms.
//!
//! ```text
//! expr  := ['+'|'-'] term (('+'|'-') term)*
//! term  := [number '*'] atom | number '*' term
//! atom  := 'laplacian' | 'biharmonic' | 'diag' K | 'd[' [i (',' i)*] ']'
//! ```
//! `d[...]` lists 0-based coordinate indices, one per differentiation (`d[0,0,1]` is `u_001`);
//! `d[]` is `u` itself; `diagK` is `Σ_i ∂^K u/∂x_i^K`. Example: `2*d[0,0,1] - d[3] + 0.5*d[]`.

use super::Operator;

/// A syntax error, naming the offending token and its byte position.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("operator syntax error at position {position}: {message} (found '{token}')")]
pub struct ParseError {
    /// Byte offset of the token.
    pub position: usize,
    /// The token (or "end of input").
    pub token: String,
    /// What was expected.
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Plus,
    Minus,
    Star,
    LBracket,
    RBracket,
    Comma,
    End,
}

fn lex(s: &str) -> Result<Vec<(usize, String, Tok)>, ParseError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = match c {
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Star,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            c if c.is_ascii_digit() || c == '.' => {
                while i + 1 < b.len()
                    && ((b[i + 1] as char).is_ascii_digit()
                        || b[i + 1] == b'.'
                        || b[i + 1] == b'e'
                        || b[i + 1] == b'E'
                        || ((b[i + 1] == b'-' || b[i + 1] == b'+') && (b[i] == b'e' || b[i] == b'E')))
                {
                    i += 1;
                }
                let text = &s[start..=i];
                let v: f64 = text.parse().map_err(|_| ParseError {
                    position: start,
                    token: text.into(),
                    message: "not a number".into(),
                })?;
                if !v.is_finite() {
                    return Err(ParseError {
                        position: start,
                        token: text.into(),
                        message: "not a finite number".into(),
                    });
                }
                Tok::Num(v)
            }
            c if c.is_ascii_alphabetic() => {
                while i + 1 < b.len() && (b[i + 1] as char).is_ascii_alphanumeric() {
                    i += 1;
                }
                Tok::Ident(s[start..=i].to_string())
            }
            _ => {
                return Err(ParseError {
                    position: start,
                    token: c.to_string(),
                    message: "unexpected character".into(),
                });
            }
        };
        i += 1;
        out.push((start, s[start..i].to_string(), tok));
    }
    out.push((s.len(), "end of input".into(), Tok::End));
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, String, Tok)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].2
    }
    fn err(&self, message: &str) -> ParseError {
        let (p, t, _) = &self.toks[self.pos];
        ParseError {
            position: *p,
            token: t.clone(),
            message: message.into(),
        }
    }
    fn next(&mut self) -> Tok {
        let t = self.toks[self.pos].2.clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    /// `[-]* [number '*']* atom`, scaled: signs and coefficients are collected in a loop (no
    /// recursion, so a long input cannot exhaust the stack).
    fn term(&mut self) -> Result<Operator, ParseError> {
        let mut scale = 1.0;
        loop {
            match *self.peek() {
                Tok::Minus => {
                    self.next();
                    scale = -scale;
                }
                Tok::Num(v) => {
                    self.next();
                    if *self.peek() != Tok::Star {
                        return Err(self.err("expected '*' after a coefficient"));
                    }
                    self.next();
                    scale *= v;
                }
                _ => break,
            }
        }
        let atom = self.atom()?;
        Ok(if scale == 1.0 {
            atom
        } else {
            Operator::default().plus(scale, atom)
        })
    }

    fn atom(&mut self) -> Result<Operator, ParseError> {
        let Tok::Ident(name) = self.peek().clone() else {
            return Err(self.err("expected an operator: laplacian, biharmonic, diagK or d[...]"));
        };
        let name_err = self.err("unknown operator name (expected laplacian, biharmonic, diagK or d[...])");
        self.next();
        match name.as_str() {
            "laplacian" => Ok(Operator::laplacian()),
            "biharmonic" => Ok(Operator::biharmonic()),
            "d" => {
                if *self.peek() != Tok::LBracket {
                    return Err(self.err("expected '[' after 'd'"));
                }
                self.next();
                let mut index = Vec::new();
                if *self.peek() == Tok::RBracket {
                    self.next();
                    return Ok(Operator::partial(&index));
                }
                loop {
                    match self.peek().clone() {
                        Tok::Num(v) if v >= 0.0 && v.fract() == 0.0 && v < 1e15 => {
                            index.push(v as usize);
                            self.next();
                        }
                        _ => return Err(self.err("expected a non-negative integer coordinate index")),
                    }
                    match self.peek() {
                        Tok::Comma => self.next(),
                        Tok::RBracket => {
                            self.next();
                            break;
                        }
                        _ => return Err(self.err("expected ',' or ']'")),
                    };
                }
                Ok(Operator::partial(&index))
            }
            n if n.starts_with("diag") => match n[4..].parse::<usize>() {
                Ok(k) if k >= 1 => Ok(Operator::diagonal(k)),
                _ => Err(name_err),
            },
            _ => Err(name_err),
        }
    }
}

/// Parses the operator syntax (see the module documentation).
pub fn parse(text: &str) -> Result<Operator, ParseError> {
    let mut p = Parser {
        toks: lex(text)?,
        pos: 0,
    };
    let mut op = Operator::default();
    let mut sign = 1.0;
    match p.peek() {
        Tok::Minus => {
            sign = -1.0;
            p.next();
        }
        Tok::Plus => {
            p.next();
        }
        Tok::End => return Err(p.err("empty operator")),
        _ => {}
    }
    loop {
        let start = p.toks[p.pos].0;
        let t = p.term()?;
        op = op.plus(sign, t);
        if !op.coefficients_finite() {
            return Err(ParseError {
                position: start,
                token: p.toks[p.pos.saturating_sub(1)].1.clone(),
                message: "the coefficient overflows to infinity".into(),
            });
        }
        match p.peek() {
            Tok::Plus => sign = 1.0,
            Tok::Minus => sign = -1.0,
            Tok::End => return Ok(op),
            _ => return Err(p.err("expected '+', '-' or the end")),
        }
        p.next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::{Family, Term};

    #[test]
    fn parses_the_documented_examples() {
        let op = parse("2*d[0,0,1] - d[3] + 0.5*d[]").unwrap();
        assert_eq!(
            op.terms,
            vec![
                Term {
                    coeff: 2.0,
                    index: vec![0, 0, 1]
                },
                Term {
                    coeff: -1.0,
                    index: vec![3]
                },
                Term {
                    coeff: 0.5,
                    index: vec![]
                }
            ]
        );
        assert_eq!(parse("laplacian").unwrap(), Operator::laplacian());
        assert_eq!(
            parse("diag4").unwrap().families,
            vec![Family::Diagonal { coeff: 1.0, order: 4 }]
        );
        assert_eq!(
            parse("-3*biharmonic").unwrap().families,
            vec![Family::Biharmonic { coeff: -3.0 }]
        );
        assert_eq!(parse("d[1,0]").unwrap().terms[0].index, vec![0, 1]);
        assert_eq!(parse("1e-1*d[2]").unwrap().terms[0].coeff, 0.1);
    }

    #[test]
    fn long_inputs_and_huge_coefficients_are_handled() {
        let signs = format!("{}d[0]", "-".repeat(200_000));
        assert_eq!(parse(&signs).unwrap(), Operator::partial(&[0]));
        let coeffs = format!("{}d[0]", "1*".repeat(100_000));
        assert_eq!(parse(&coeffs).unwrap(), Operator::partial(&[0]));
        let e = parse("1e999*d[0]").unwrap_err();
        assert!(e.message.contains("finite"), "{e}");
        let e = parse("1e300*1e300*d[0]").unwrap_err();
        assert!(e.message.contains("infinity"), "{e}");
    }

    #[test]
    fn errors_name_the_bad_token() {
        for (text, token) in [
            ("laplacan", "laplacan"),
            ("d[0,,1]", ","),
            ("2*", "end of input"),
            ("d[0", "end of input"),
            ("d[0 1]", "1"),
            ("d[0 1", "1"),
            ("", "end of input"),
            ("d[-1]", "-"),
            ("lap$", "$"),
            ("d[0] d[1]", "d"),
            ("diag0", "diag0"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.token, token, "{text}: {e}");
        }
    }
}
