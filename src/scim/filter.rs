//! SCIM 2.0 filter expressions (RFC 7644 §3.4.2.2) and PATCH paths (RFC 7644 §3.5.2).
//!
//! [`parse`] turns a `filter=` query parameter into a [`Filter`] AST and [`parse_path`] turns a
//! PATCH operation's `path` into a [`PatchPath`]. Every AST type implements [`fmt::Display`],
//! printing a canonical form (lower-case operators, JSON-escaped strings, parentheses only where
//! needed) that parses back to an equal AST.
//!
//! This module is pure: it does no IO and resolves nothing. Attribute names keep the case they
//! were written in; matching them against a schema (case-insensitively) happens elsewhere.
//!
//! Limits: parentheses, `not (...)` and `[...]` may nest at most [`MAX_DEPTH`] levels, and a
//! filter may hold at most 1,000 comparisons (`eq`, `pr`, ...). Longer `and`/`or` chains are
//! parsed iteratively, so no input can overflow the stack; exceeding a limit is a [`ParseError`].
//! Positions in errors are 0-based offsets in `char`s, never bytes.

use std::fmt;

/// Deepest nesting of parentheses, `not (...)` and value filters (`emails[...]`) accepted.
pub const MAX_DEPTH: usize = 32;

/// Most comparisons (`attr op value` or `attr pr`) accepted in one filter.
const MAX_TERMS: usize = 1000;

/// An attribute reference: optional schema URN, attribute name, optional sub-attribute.
/// Names keep the case they were written in; resolution (case-insensitive) happens elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

/// A comparison operator of RFC 7644 §3.4.2.2, Table 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// The right-hand side of a comparison: a JSON literal.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work"]`: `attr` has no `sub`; paths inside `filter` are relative to the
    /// elements of `attr` (they have no urn, and `name` is the sub-attribute, e.g. `type`).
    ValuePath {
        attr: AttrPath,
        filter: Box<Filter>,
    },
}

/// A PATCH operation path: `attrPath` or `valuePath [ "." subAttr ]`.
///
/// As parsed: `sub` is only set together with `filter`, and `attr.sub` only without `filter`
/// (`name.familyName` is `attr` = name.familyName; `emails[type eq "work"].value` is `attr` =
/// emails, `filter`, `sub` = value). Paths inside `filter` are relative, as in
/// [`Filter::ValuePath`].
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

/// Why an input is not a valid filter or path; `position` is a 0-based char offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct ParseError {
    pub position: usize,
    pub message: String,
}

/// Parses a filter expression such as `userName eq "bjensen" and not (emails pr)`.
pub fn parse(input: &str) -> Result<Filter, ParseError> {
    // No store can hold one, and no attribute value has one (see `resource::check`).
    if let Some(at) = input.find('\0') {
        return Err(err(at, "a filter may not hold a NUL character"));
    }
    let mut p = Parser::new(input);
    if p.peek()?.tok == Tok::Eof {
        return Err(err(0, "empty filter"));
    }
    let filter = p.parse_or(0, false)?;
    let tok = p.next()?;
    match tok.tok {
        Tok::Eof => Ok(filter),
        Tok::RParen | Tok::RBracket => Err(unexpected(&tok)),
        _ => Err(err(
            tok.start,
            "trailing input: expected \"and\", \"or\" or the end of the filter",
        )),
    }
}

/// Parses a PATCH path such as `members`, `name.familyName` or `emails[type eq "work"].value`.
pub fn parse_path(input: &str) -> Result<PatchPath, ParseError> {
    if let Some(at) = input.find('\0') {
        return Err(err(at, "a path may not hold a NUL character"));
    }
    let mut p = Parser::new(input);
    let tok = p.next()?;
    let attr = match &tok.tok {
        Tok::Word(w) => attr_path(w, tok.start)?,
        Tok::Eof => return Err(err(0, "empty path")),
        _ => return Err(err(tok.start, "expected an attribute path")),
    };
    let mut path = PatchPath {
        attr,
        filter: None,
        sub: None,
    };
    if p.peek()?.tok == Tok::LBracket {
        let open = p.next()?;
        if path.attr.sub.is_some() {
            return Err(err(open.start, SUB_THEN_FILTER));
        }
        path.filter = Some(p.parse_bracket(0)?);
        if p.peek()?.tok == Tok::Dot {
            p.next()?;
            path.sub = Some(p.sub_attr_name()?);
        }
    }
    let tok = p.next()?;
    match tok.tok {
        Tok::Eof => Ok(path),
        _ => Err(err(tok.start, "trailing input after the path")),
    }
}

const SUB_THEN_FILTER: &str = "a value filter \"[...]\" cannot follow a sub-attribute";
const EXPECTED_TERM: &str = "expected an attribute path, \"not (\" or \"(\"";

fn err(position: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        position,
        message: message.into(),
    }
}

/// `word` in double quotes for an error message, shortened if long.
fn quote(word: &str) -> String {
    const MAX: usize = 40;
    match word.char_indices().nth(MAX) {
        Some((cut, _)) => format!("\"{}...\"", &word[..cut]),
        None => format!("\"{word}\""),
    }
}

fn unexpected(tok: &Token) -> ParseError {
    err(tok.start, format!("unexpected {}", tok.tok.describe()))
}

impl CompareOp {
    /// The operator as written in a canonical filter (`"eq"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn from_word(word: &str) -> Option<Self> {
        const ALL: [CompareOp; 9] = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ];
        ALL.into_iter()
            .find(|op| word.eq_ignore_ascii_case(op.as_str()))
    }
}

/// Is `s` an ATTRNAME: `ALPHA *(nameChar)` (or `$` first, for `$ref`)?
fn is_attr_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Splits a word token (ASCII only, so byte offsets are char offsets) into an [`AttrPath`].
fn attr_path(word: &str, start: usize) -> Result<AttrPath, ParseError> {
    let is_urn = word
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    let (urn, rest, rest_start) = match word.rfind(':') {
        Some(i) if is_urn => (Some(word[..i].to_string()), &word[i + 1..], start + i + 1),
        Some(i) => {
            return Err(err(
                start + i,
                format!(
                    "unexpected \":\" in {} (a schema prefix must start with \"urn:\")",
                    quote(word)
                ),
            ));
        }
        None => (None, word, start),
    };
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some((sub, rest_start + name.len() + 1))),
        None => (rest, None),
    };
    if !is_attr_name(name) {
        return Err(err(
            rest_start,
            format!("invalid attribute name {}", quote(name)),
        ));
    }
    if let Some((sub, sub_start)) = sub
        && !is_attr_name(sub)
    {
        return Err(err(
            sub_start,
            format!("invalid sub-attribute name {}", quote(sub)),
        ));
    }
    Ok(AttrPath {
        urn,
        name: name.to_string(),
        sub: sub.map(|(s, _)| s.to_string()),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Dot,
    /// An attribute path, operator, logical word or `true`/`false`/`null`.
    Word(String),
    /// A decoded string literal.
    Str(String),
    Num(serde_json::Number),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::LBracket => "\"[\"".into(),
            Tok::RBracket => "\"]\"".into(),
            Tok::Dot => "\".\"".into(),
            Tok::Word(w) => quote(w),
            Tok::Str(_) => "a string".into(),
            Tok::Num(_) => "a number".into(),
            Tok::Eof => "end of input".into(),
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }
}

struct Token {
    tok: Tok,
    start: usize,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    peeked: Option<Token>,
    terms: usize,
}

impl Parser {
    fn new(input: &str) -> Self {
        Parser {
            chars: input.chars().collect(),
            pos: 0,
            peeked: None,
            terms: 0,
        }
    }

    fn peek(&mut self) -> Result<&Token, ParseError> {
        let tok = match self.peeked.take() {
            Some(tok) => tok,
            None => self.lex()?,
        };
        Ok(self.peeked.insert(tok))
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        match self.peeked.take() {
            Some(tok) => Ok(tok),
            None => self.lex(),
        }
    }

    fn lex(&mut self) -> Result<Token, ParseError> {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&c) = self.chars.get(start) else {
            return Ok(Token {
                tok: Tok::Eof,
                start,
            });
        };
        let single = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            '.' => Some(Tok::Dot),
            _ => None,
        };
        let tok = if let Some(tok) = single {
            self.pos += 1;
            tok
        } else if c == '"' {
            self.lex_string()?
        } else if c == '-' || c.is_ascii_digit() {
            let text = self.take_while(|c| c.is_ascii_digit() || "+-.eE".contains(c));
            let num: serde_json::Number = serde_json::from_str(&text)
                .map_err(|_| err(start, format!("invalid number {}", quote(&text))))?;
            // serde_json's default float parsing is not always correctly rounded (that needs
            // its `float_roundtrip` feature); std's is, so printed floats reparse exactly.
            match text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                Some(exact) if num.is_f64() => Tok::Num(exact),
                _ => Tok::Num(num),
            }
        } else if c.is_ascii_alphabetic() || c == '$' {
            Tok::Word(self.take_while(|c| c.is_ascii_alphanumeric() || "_$:.-".contains(c)))
        } else {
            return Err(err(
                start,
                format!("unexpected character \"{}\"", c.escape_debug()),
            ));
        };
        Ok(Token { tok, start })
    }

    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.chars.get(self.pos).is_some_and(|&c| pred(c)) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// Lexes a JSON string literal starting at `self.pos` and decodes it with serde_json.
    fn lex_string(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let mut i = start + 1;
        loop {
            match self.chars.get(i) {
                None => return Err(err(start, "unterminated string")),
                Some('\\') => i += 2,
                Some('"') => break,
                Some(_) => i += 1,
            }
        }
        self.pos = i + 1;
        let text: String = self.chars[start..self.pos].iter().collect();
        serde_json::from_str(&text).map(Tok::Str).map_err(|e| {
            // serde_json reports a 1-based byte column within `text`; convert it to chars.
            let byte = e.column().saturating_sub(1);
            let offset = text.char_indices().take_while(|&(b, _)| b < byte).count();
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or_default();
            err(start + offset, format!("invalid string literal: {msg}"))
        })
    }

    fn count_term(&mut self, start: usize) -> Result<(), ParseError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(err(
                start,
                format!("filter too complex (more than {MAX_TERMS} comparisons)"),
            ));
        }
        Ok(())
    }

    /// `or`-chain: `and_expr *("or" and_expr)`, built iteratively (left-associative).
    fn parse_or(&mut self, depth: usize, in_bracket: bool) -> Result<Filter, ParseError> {
        let mut left = self.parse_and(depth, in_bracket)?;
        while self.peek()?.tok.is_word("or") {
            self.next()?;
            let right = self.parse_and(depth, in_bracket)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `and`-chain: `term *("and" term)`, built iteratively (left-associative).
    fn parse_and(&mut self, depth: usize, in_bracket: bool) -> Result<Filter, ParseError> {
        let mut left = self.parse_term(depth, in_bracket)?;
        while self.peek()?.tok.is_word("and") {
            self.next()?;
            let right = self.parse_term(depth, in_bracket)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn enter(depth: usize, start: usize) -> Result<usize, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(err(
                start,
                format!("filter nested too deeply (at most {MAX_DEPTH} levels)"),
            ));
        }
        Ok(depth + 1)
    }

    /// Parses `"(" filter ")"` after the `(` was consumed.
    fn parse_group(
        &mut self,
        depth: usize,
        start: usize,
        bracket: bool,
    ) -> Result<Filter, ParseError> {
        let inner = self.parse_or(Self::enter(depth, start)?, bracket)?;
        let close = self.next()?;
        match close.tok {
            Tok::RParen => Ok(inner),
            _ => Err(err(close.start, "expected \"and\", \"or\" or \")\"")),
        }
    }

    /// Parses `filter "]"` after the `[` was consumed.
    fn parse_bracket(&mut self, depth: usize) -> Result<Filter, ParseError> {
        let start = self.peek()?.start;
        let inner = self.parse_or(Self::enter(depth, start)?, true)?;
        let close = self.next()?;
        match close.tok {
            Tok::RBracket => Ok(inner),
            _ => Err(err(close.start, "expected \"and\", \"or\" or \"]\"")),
        }
    }

    fn parse_term(&mut self, depth: usize, in_bracket: bool) -> Result<Filter, ParseError> {
        let tok = self.next()?;
        match tok.tok {
            Tok::LParen => self.parse_group(depth, tok.start, in_bracket),
            Tok::Word(w) if w.eq_ignore_ascii_case("not") && self.peek()?.tok == Tok::LParen => {
                self.next()?;
                let inner = self.parse_group(depth, tok.start, in_bracket)?;
                Ok(Filter::Not(Box::new(inner)))
            }
            Tok::Word(w) => self.parse_attr_expr(&w, tok.start, depth, in_bracket),
            Tok::RParen | Tok::RBracket => Err(unexpected(&tok)),
            Tok::Eof => Err(err(
                tok.start,
                format!("{EXPECTED_TERM}, found end of input"),
            )),
            other => Err(err(
                tok.start,
                format!("{EXPECTED_TERM}, found {}", other.describe()),
            )),
        }
    }

    /// After the attribute word: `op value`, `pr`, or a value filter `[...]` (optionally followed
    /// by Entra's `.sub op value` / `.sub pr`).
    fn parse_attr_expr(
        &mut self,
        word: &str,
        start: usize,
        depth: usize,
        in_bracket: bool,
    ) -> Result<Filter, ParseError> {
        let path = attr_path(word, start)?;
        if in_bracket && (path.urn.is_some() || path.sub.is_some()) {
            return Err(err(
                start,
                format!(
                    "expected a plain sub-attribute name inside \"[...]\", found {}",
                    quote(word)
                ),
            ));
        }
        if self.peek()?.tok != Tok::LBracket {
            return self.parse_comparison(path, word, start);
        }
        let open = self.next()?;
        if in_bracket {
            return Err(err(
                open.start,
                "nested value filters \"[...]\" are not allowed",
            ));
        }
        if path.sub.is_some() {
            return Err(err(open.start, SUB_THEN_FILTER));
        }
        let mut inner = self.parse_bracket(depth)?;
        if self.peek()?.tok == Tok::Dot {
            self.next()?;
            let sub_start = self.peek()?.start;
            let name = self.sub_attr_name()?;
            let sub = AttrPath {
                urn: None,
                name: name.clone(),
                sub: None,
            };
            let tail = self.parse_comparison(sub, &name, sub_start)?;
            inner = Filter::And(Box::new(inner), Box::new(tail));
        }
        Ok(Filter::ValuePath {
            attr: path,
            filter: Box::new(inner),
        })
    }

    /// `subAttr` after a `.` that follows `]`.
    fn sub_attr_name(&mut self) -> Result<String, ParseError> {
        let tok = self.next()?;
        match tok.tok {
            Tok::Word(w) if is_attr_name(&w) => Ok(w),
            _ => Err(err(tok.start, "expected a sub-attribute name after \".\"")),
        }
    }

    /// After an attribute path: `pr` or `compareOp compValue`.
    fn parse_comparison(
        &mut self,
        path: AttrPath,
        word: &str,
        start: usize,
    ) -> Result<Filter, ParseError> {
        let tok = self.next()?;
        let op = match &tok.tok {
            Tok::Word(w) if w.eq_ignore_ascii_case("pr") => {
                self.count_term(start)?;
                return Ok(Filter::Present(path));
            }
            Tok::Word(w) => CompareOp::from_word(w),
            _ => None,
        };
        let Some(op) = op else {
            let message = if word.eq_ignore_ascii_case("not") {
                "expected \"(\" after \"not\"".to_string()
            } else {
                format!(
                    "expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le) or pr \
                     after {}",
                    quote(word)
                )
            };
            return Err(err(tok.start, message));
        };
        let val = self.next()?;
        let value = match val.tok {
            Tok::Str(s) => CompValue::String(s),
            Tok::Num(n) => CompValue::Number(n),
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => CompValue::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => CompValue::Bool(false),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => CompValue::Null,
            _ => {
                return Err(err(
                    val.start,
                    format!(
                        "expected a value (string, number, true, false or null) after \"{}\"",
                        op.as_str()
                    ),
                ));
            }
        };
        self.count_term(start)?;
        Ok(Filter::Compare { path, op, value })
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?),
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, operand: &Filter, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({operand})")
    } else {
        write!(f, "{operand}")
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { attr, filter } => write!(f, "{attr}[{filter}]"),
            Filter::And(..) | Filter::Or(..) => {
                let is_and = matches!(self, Filter::And(..));
                // Walk the left spine iteratively so long chains don't recurse.
                let mut rights = Vec::new();
                let mut leftmost = self;
                loop {
                    match leftmost {
                        Filter::And(l, r) if is_and => {
                            rights.push(&**r);
                            leftmost = l;
                        }
                        Filter::Or(l, r) if !is_and => {
                            rights.push(&**r);
                            leftmost = l;
                        }
                        _ => break,
                    }
                }
                write_operand(f, leftmost, is_and && matches!(leftmost, Filter::Or(..)))?;
                let word = if is_and { " and " } else { " or " };
                for right in rights.into_iter().rev() {
                    f.write_str(word)?;
                    let parens = matches!(right, Filter::Or(..))
                        || (is_and && matches!(right, Filter::And(..)));
                    write_operand(f, right, parens)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Fully parenthesised rendering that shows the tree shape.
    fn sexpr(f: &Filter) -> String {
        match f {
            Filter::Compare { path, op, value } => format!("({op} {path} {value})"),
            Filter::Present(path) => format!("(pr {path})"),
            Filter::And(a, b) => format!("(and {} {})", sexpr(a), sexpr(b)),
            Filter::Or(a, b) => format!("(or {} {})", sexpr(a), sexpr(b)),
            Filter::Not(a) => format!("(not {})", sexpr(a)),
            Filter::ValuePath { attr, filter } => format!("(vp {attr} {})", sexpr(filter)),
        }
    }

    /// Parses `input`, compares its shape, and checks Display reparses to the same AST.
    fn check(input: &str, expected: &str) {
        let parsed = parse(input);
        assert_eq!(
            parsed.as_ref().map(sexpr),
            Ok(expected.to_string()),
            "{input}"
        );
        if let Ok(f) = parsed {
            assert_eq!(parse(&f.to_string()), Ok(f.clone()), "{input} -> {f}");
        }
    }

    fn display(input: &str, canonical: &str) {
        assert_eq!(
            parse(input).map(|f| f.to_string()),
            Ok(canonical.to_string())
        );
    }

    fn fails(input: &str, position: usize, message: &str) {
        match parse(input) {
            Err(e) => {
                assert_eq!(e.position, position, "{input}: {e}");
                assert!(e.message.contains(message), "{input}: {e}");
            }
            Ok(f) => assert_eq!(Err::<Filter, _>(message), Ok(f), "{input}"),
        }
    }

    fn path_fails(input: &str, position: usize, message: &str) {
        match parse_path(input) {
            Err(e) => {
                assert_eq!(e.position, position, "{input}: {e}");
                assert!(e.message.contains(message), "{input}: {e}");
            }
            Ok(p) => assert_eq!(Err::<PatchPath, _>(message), Ok(p), "{input}"),
        }
    }

    fn attr(urn: Option<&str>, name: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            urn: urn.map(str::to_string),
            name: name.to_string(),
            sub: sub.map(str::to_string),
        }
    }

    #[test]
    fn operators_and_case() {
        for (input, expected) in [
            ("a eq 1", "(eq a 1)"),
            ("a ne 1", "(ne a 1)"),
            ("a co \"x\"", "(co a \"x\")"),
            ("a sw \"x\"", "(sw a \"x\")"),
            ("a ew \"x\"", "(ew a \"x\")"),
            ("a gt 1", "(gt a 1)"),
            ("a ge 1", "(ge a 1)"),
            ("a lt 1", "(lt a 1)"),
            ("a le 1", "(le a 1)"),
            ("a pr", "(pr a)"),
            ("userName Eq \"john\"", "(eq userName \"john\")"),
            ("a EQ 1 AND b PR", "(and (eq a 1) (pr b))"),
            ("a gE 1 Or b pR", "(or (ge a 1) (pr b))"),
            ("NOT (a pr)", "(not (pr a))"),
            ("a\teq\t1", "(eq a 1)"),
            ("  a   eq   1  ", "(eq a 1)"),
            ("a eq\n1", "(eq a 1)"),
            // Words that are keywords elsewhere are fine as attribute names.
            ("not pr", "(pr not)"),
            ("and eq true", "(eq and true)"),
            ("eq eq \"x\"", "(eq eq \"x\")"),
            ("pr pr", "(pr pr)"),
        ] {
            check(input, expected);
        }
    }

    #[test]
    fn precedence_and_grouping() {
        for (input, expected) in [
            (
                "a eq 1 or b eq 2 and c eq 3",
                "(or (eq a 1) (and (eq b 2) (eq c 3)))",
            ),
            (
                "a eq 1 and b eq 2 or c eq 3",
                "(or (and (eq a 1) (eq b 2)) (eq c 3))",
            ),
            ("a pr and b pr and c pr", "(and (and (pr a) (pr b)) (pr c))"),
            ("a pr or b pr or c pr", "(or (or (pr a) (pr b)) (pr c))"),
            ("(a pr or b pr) and c pr", "(and (or (pr a) (pr b)) (pr c))"),
            ("a pr and (b pr or c pr)", "(and (pr a) (or (pr b) (pr c)))"),
            (
                "a pr and (b pr and c pr)",
                "(and (pr a) (and (pr b) (pr c)))",
            ),
            ("not (a pr) and b pr", "(and (not (pr a)) (pr b))"),
            ("not (a pr or b pr)", "(not (or (pr a) (pr b)))"),
            ("not(a pr)", "(not (pr a))"),
            ("not  (  a pr  )", "(not (pr a))"),
            ("not (not (a pr))", "(not (not (pr a)))"),
            ("((a pr))", "(pr a)"),
            ("(a pr)and(b pr)", "(and (pr a) (pr b))"),
        ] {
            check(input, expected);
        }
    }

    #[test]
    fn values() {
        for (input, expected) in [
            ("a eq null", "(eq a null)"),
            ("a eq NULL", "(eq a null)"),
            ("a eq TRUE", "(eq a true)"),
            ("a eq False", "(eq a false)"),
            ("a eq 12", "(eq a 12)"),
            ("a eq 0", "(eq a 0)"),
            ("a eq -7", "(eq a -7)"),
            ("a eq -1.5e3", "(eq a -1500.0)"),
            ("a eq 2.50", "(eq a 2.5)"),
            ("a eq 18446744073709551615", "(eq a 18446744073709551615)"),
            ("a eq -9223372036854775808", "(eq a -9223372036854775808)"),
            ("a eq 1E+2", "(eq a 100.0)"),
            ("a eq 9.215382e-18", "(eq a 9.215382e-18)"),
            ("a eq 0.1", "(eq a 0.1)"),
            ("a eq \"\"", "(eq a \"\")"),
            (
                r#"a eq "a \"quoted\" \u00e9 value""#,
                r#"(eq a "a \"quoted\" é value")"#,
            ),
            (r#"a eq "t\tn\n\/\\""#, r#"(eq a "t\tn\n/\\")"#),
            (r#"a eq "\ud83d\ude00""#, "(eq a \"😀\")"),
            ("a eq \"日本 ]) and\"", "(eq a \"日本 ]) and\")"),
        ] {
            check(input, expected);
        }
        assert_eq!(
            parse(r#"a eq "x\"y""#),
            Ok(Filter::Compare {
                path: attr(None, "a", None),
                op: CompareOp::Eq,
                value: CompValue::String("x\"y".into()),
            })
        );
    }

    #[test]
    fn attribute_paths() {
        let cases = [
            ("userName pr", attr(None, "userName", None)),
            ("name.familyName pr", attr(None, "name", Some("familyName"))),
            ("$ref pr", attr(None, "$ref", None)),
            ("members.$ref pr", attr(None, "members", Some("$ref"))),
            ("x-y_2 pr", attr(None, "x-y_2", None)),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:userName pr",
                attr(
                    Some("urn:ietf:params:scim:schemas:core:2.0:User"),
                    "userName",
                    None,
                ),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr",
                attr(
                    Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
                    "manager",
                    Some("value"),
                ),
            ),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName pr",
                attr(
                    Some("urn:ietf:params:scim:schemas:core:2.0:User"),
                    "name",
                    Some("familyName"),
                ),
            ),
            ("URN:a:B pr", attr(Some("URN:a"), "B", None)),
        ];
        for (input, path) in cases {
            assert_eq!(parse(input), Ok(Filter::Present(path)), "{input}");
        }
    }

    #[test]
    fn value_paths() {
        for (input, expected) in [
            ("emails[type eq \"work\"]", "(vp emails (eq type \"work\"))"),
            (
                "emails[type eq \"work\" and value co \"@example.com\"]",
                "(vp emails (and (eq type \"work\") (co value \"@example.com\")))",
            ),
            ("members[value eq \"x\"]", "(vp members (eq value \"x\"))"),
            (
                "emails [ primary eq true ]",
                "(vp emails (eq primary true))",
            ),
            (
                "emails[type eq \"work\"].value eq \"a@b.c\"",
                "(vp emails (and (eq type \"work\") (eq value \"a@b.c\")))",
            ),
            (
                "emails[type eq \"work\"].value pr",
                "(vp emails (and (eq type \"work\") (pr value)))",
            ),
            (
                "emails[type eq \"work\" or primary eq true].value PR and x pr",
                "(and (vp emails (and (or (eq type \"work\") (eq primary true)) (pr value))) (pr x))",
            ),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq \"work\"]",
                "(vp urn:ietf:params:scim:schemas:core:2.0:User:emails (eq type \"work\"))",
            ),
            (
                "emails[not (type eq \"work\")]",
                "(vp emails (not (eq type \"work\")))",
            ),
            (
                "emails[(type eq \"a\" or type eq \"b\") and value pr]",
                "(vp emails (and (or (eq type \"a\") (eq type \"b\")) (pr value)))",
            ),
            (
                "emails[type eq \"work\"] and name.givenName pr",
                "(and (vp emails (eq type \"work\")) (pr name.givenName))",
            ),
        ] {
            check(input, expected);
        }
        assert_eq!(
            parse("urn:ietf:params:scim:schemas:core:2.0:User:emails[type pr]"),
            Ok(Filter::ValuePath {
                attr: attr(
                    Some("urn:ietf:params:scim:schemas:core:2.0:User"),
                    "emails",
                    None
                ),
                filter: Box::new(Filter::Present(attr(None, "type", None))),
            })
        );
    }

    #[test]
    fn rfc7644_examples() {
        let u = "urn:ietf:params:scim:schemas:core:2.0:User";
        for (input, expected) in [
            ("userName Eq \"john\"", "(eq userName \"john\")".to_string()),
            ("userName eq \"bjensen\"", "(eq userName \"bjensen\")".into()),
            ("name.familyName co \"O'Malley\"", "(co name.familyName \"O'Malley\")".into()),
            ("userName sw \"J\"", "(sw userName \"J\")".into()),
            (&format!("{u}:userName sw \"J\""), format!("(sw {u}:userName \"J\")")),
            ("title pr", "(pr title)".into()),
            (
                "meta.lastModified gt \"2011-05-13T04:42:34Z\"",
                "(gt meta.lastModified \"2011-05-13T04:42:34Z\")".into(),
            ),
            (
                "meta.lastModified ge \"2011-05-13T04:42:34Z\"",
                "(ge meta.lastModified \"2011-05-13T04:42:34Z\")".into(),
            ),
            (
                "meta.lastModified lt \"2011-05-13T04:42:34Z\"",
                "(lt meta.lastModified \"2011-05-13T04:42:34Z\")".into(),
            ),
            (
                "meta.lastModified le \"2011-05-13T04:42:34Z\"",
                "(le meta.lastModified \"2011-05-13T04:42:34Z\")".into(),
            ),
            (
                "title pr and userType eq \"Employee\"",
                "(and (pr title) (eq userType \"Employee\"))".into(),
            ),
            (
                "title pr or userType eq \"Intern\"",
                "(or (pr title) (eq userType \"Intern\"))".into(),
            ),
            (
                "schemas eq \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\"",
                "(eq schemas \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\")"
                    .into(),
            ),
            (
                "userType eq \"Employee\" and (emails co \"example.com\" or emails.value co \"example.org\")",
                "(and (eq userType \"Employee\") (or (co emails \"example.com\") (co emails.value \"example.org\")))".into(),
            ),
            (
                "userType ne \"Employee\" and not (emails co \"example.com\" or emails.value co \"example.org\")",
                "(and (ne userType \"Employee\") (not (or (co emails \"example.com\") (co emails.value \"example.org\"))))".into(),
            ),
            (
                "userType eq \"Employee\" and (emails.type eq \"work\")",
                "(and (eq userType \"Employee\") (eq emails.type \"work\"))".into(),
            ),
            (
                "userType eq \"Employee\" and emails[type eq \"work\" and value co \"@example.com\"]",
                "(and (eq userType \"Employee\") (vp emails (and (eq type \"work\") (co value \"@example.com\"))))".into(),
            ),
            (
                "emails[type eq \"work\" and value co \"@example.com\"] or ims[type eq \"xmpp\" and value co \"@foo.com\"]",
                "(or (vp emails (and (eq type \"work\") (co value \"@example.com\"))) (vp ims (and (eq type \"xmpp\") (co value \"@foo.com\"))))".into(),
            ),
            (
                "userType eq \"Employee\" and emails[type eq \"work\" and value co \"@example.com\"] or ims[type eq \"xmpp\" and value co \"@foo.com\"]",
                "(or (and (eq userType \"Employee\") (vp emails (and (eq type \"work\") (co value \"@example.com\")))) (vp ims (and (eq type \"xmpp\") (co value \"@foo.com\"))))".into(),
            ),
        ] {
            check(input, &expected);
        }
    }

    #[test]
    fn canonical_display() {
        for (input, canonical) in [
            ("userName Eq \"john\"", "userName eq \"john\""),
            ("a pr AND (b pr OR c pr)", "a pr and (b pr or c pr)"),
            ("((a pr))", "a pr"),
            ("(a pr and b pr) and c pr", "a pr and b pr and c pr"),
            ("a pr and (b pr and c pr)", "a pr and (b pr and c pr)"),
            ("a pr or (b pr and c pr)", "a pr or b pr and c pr"),
            ("(a pr or b pr) or c pr", "a pr or b pr or c pr"),
            ("a pr or (b pr or c pr)", "a pr or (b pr or c pr)"),
            ("(a pr or b pr) and c pr", "(a pr or b pr) and c pr"),
            ("NOT(a pr)", "not (a pr)"),
            ("a eq 1.50", "a eq 1.5"),
            ("a eq TRUE", "a eq true"),
            (r#"a eq "\u00e9\/""#, "a eq \"é/\""),
            (
                "emails[type eq \"work\"].value eq \"a@b.c\"",
                "emails[type eq \"work\" and value eq \"a@b.c\"]",
            ),
            (
                "emails[type eq \"w\" or primary eq true].value pr",
                "emails[(type eq \"w\" or primary eq true) and value pr]",
            ),
        ] {
            display(input, canonical);
        }
    }

    #[test]
    fn errors() {
        let op_msg = "expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le) or pr after \"userName\"";
        for (input, position, message) in [
            ("", 0, "empty filter"),
            ("   ", 0, "empty filter"),
            ("userName", 8, op_msg),
            ("userName \"john\"", 9, op_msg),
            (
                "userName eq",
                11,
                "expected a value (string, number, true, false or null) after \"eq\"",
            ),
            ("userName eq john", 12, "expected a value"),
            ("userName eq \"john", 12, "unterminated string"),
            ("userName eq \"jo\\", 12, "unterminated string"),
            ("a eq \"\\x\"", 7, "invalid string literal"),
            ("a eq \"\\ud800\"", 12, "invalid string literal"),
            ("a eq \"a\tb\"", 7, "invalid string literal"),
            ("a eq 1)", 6, "unexpected \")\""),
            (")", 0, "unexpected \")\""),
            ("a eq 1 b", 7, "trailing input"),
            ("a pr \"x\"", 5, "trailing input"),
            ("(a eq 1", 7, "expected \"and\", \"or\" or \")\""),
            ("(a eq 1]", 7, "expected \"and\", \"or\" or \")\""),
            ("a eq 1 and", 10, "found end of input"),
            ("a eq 1 and ]", 11, "unexpected \"]\""),
            ("a eq 1 or 5", 10, "expected an attribute path"),
            ("not a eq 1", 4, "expected \"(\" after \"not\""),
            (
                "emails[type eq \"work\"",
                21,
                "expected \"and\", \"or\" or \"]\"",
            ),
            ("emails[type[value eq 1] eq 1]", 11, "nested value filters"),
            ("emails[urn:x:y:type eq 1]", 7, "plain sub-attribute name"),
            ("emails[type.x eq 1]", 7, "plain sub-attribute name"),
            (
                "name.givenName[x eq 1]",
                14,
                "cannot follow a sub-attribute",
            ),
            (
                "emails[type eq \"work\"].",
                23,
                "expected a sub-attribute name after \".\"",
            ),
            (
                "emails[type eq \"work\"].a.b pr",
                23,
                "expected a sub-attribute name",
            ),
            ("emails[type eq \"work\"].value", 28, "after \"value\""),
            ("emails[]", 7, "unexpected \"]\""),
            ("a eq 01", 5, "invalid number \"01\""),
            ("a eq 1e400", 5, "invalid number"),
            ("a eq -", 5, "invalid number"),
            ("a.b.c eq 1", 2, "invalid sub-attribute name \"b.c\""),
            ("a. eq 1", 2, "invalid sub-attribute name \"\""),
            ("foo:bar eq 1", 3, "unexpected \":\""),
            ("urn:a:b: eq 1", 8, "invalid attribute name \"\""),
            ("urn:a:2.0 eq 1", 6, "invalid attribute name \"2\""),
            ("1abc eq 1", 0, "found a number"),
            ("eq eq eq", 6, "expected a value"),
            (
                &format!("{}:y eq 1", "x".repeat(100)),
                100,
                &format!("\"{}...\"", "x".repeat(40)),
            ),
            ("é eq 1", 0, "unexpected character \"é\""),
            // Positions count chars, not bytes.
            ("a eq \"é\" b", 9, "trailing input"),
            ("a eq \"日本\" #", 10, "unexpected character \"#\""),
            ("a eq \"\\u00e9\\q\"", 13, "invalid string literal"),
            ("a eq \"é\\q\"", 8, "invalid string literal"),
        ] {
            fails(input, position, message);
        }
        assert_eq!(
            parse("a eq 1)").map_err(|e| e.to_string()),
            Err("unexpected \")\" at position 6".to_string())
        );
    }

    #[test]
    fn depth_limit() {
        let nested = |n: usize, open: &str, close: &str| {
            format!("{}a pr{}", open.repeat(n), close.repeat(n))
        };
        check(&nested(MAX_DEPTH, "(", ")"), "(pr a)");
        fails(
            &nested(MAX_DEPTH + 1, "(", ")"),
            MAX_DEPTH,
            "nested too deeply",
        );
        assert!(parse(&nested(MAX_DEPTH, "not (", ")")).is_ok());
        fails(
            &nested(MAX_DEPTH + 1, "not (", ")"),
            5 * MAX_DEPTH,
            "nested too deeply",
        );
        // Brackets count too.
        let inner = nested(MAX_DEPTH - 1, "(", ")");
        assert!(parse(&format!("x[{inner}]")).is_ok());
        fails(
            &format!("x[({inner})]"),
            2 + MAX_DEPTH - 1,
            "nested too deeply",
        );
        assert!(parse_path(&format!("x[{inner}]")).is_ok());
        assert!(parse_path(&format!("x[({inner})]")).is_err());
        // Huge inputs fail fast without overflowing the stack.
        let start = std::time::Instant::now();
        for input in [
            "(".repeat(100_000),
            "not (".repeat(20_000),
            "x[".repeat(50_000),
            "a eq 1 and ".repeat(10_000),
            "a pr or ".repeat(15_000),
        ] {
            assert!(parse(&input).is_err());
            assert!(parse_path(&input).is_err());
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        fails(
            &"a pr and ".repeat(2000),
            9 * MAX_TERMS,
            "filter too complex",
        );
    }

    #[test]
    fn longest_chain_fits_a_1mib_stack() {
        // Parsing and Display are iterative along and/or chains; the derived Clone/PartialEq
        // recurse, which for MAX_TERMS terms fits easily in 1 MiB even in debug builds.
        let input = vec!["a eq 1"; MAX_TERMS].join(" and ");
        let handle = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                let f = parse(&input)?;
                let printed = f.to_string();
                let again = parse(&printed)?;
                let cloned = again.clone();
                Ok::<_, ParseError>((printed == input, again == f, cloned == f))
            });
        let result = handle.map(|h| h.join().map_err(|_| "thread failed"));
        assert!(
            matches!(result, Ok(Ok(Ok((true, true, true))))),
            "{result:?}"
        );
    }

    #[test]
    fn patch_paths() {
        let u = "urn:ietf:params:scim:schemas:core:2.0:User";
        let e = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let work = parse("type eq \"work\"").ok();
        for (input, expected) in [
            (
                "members",
                PatchPath {
                    attr: attr(None, "members", None),
                    filter: None,
                    sub: None,
                },
            ),
            (
                " name.familyName ",
                PatchPath {
                    attr: attr(None, "name", Some("familyName")),
                    filter: None,
                    sub: None,
                },
            ),
            (
                "members[value eq \"2819c223\"]",
                PatchPath {
                    attr: attr(None, "members", None),
                    filter: parse("value eq \"2819c223\"").ok(),
                    sub: None,
                },
            ),
            (
                "emails[type eq \"work\"].value",
                PatchPath {
                    attr: attr(None, "emails", None),
                    filter: work.clone(),
                    sub: Some("value".into()),
                },
            ),
            (
                &format!("{e}:employeeNumber"),
                PatchPath {
                    attr: attr(Some(e), "employeeNumber", None),
                    filter: None,
                    sub: None,
                },
            ),
            (
                &format!("{u}:emails[type eq \"work\"].value"),
                PatchPath {
                    attr: attr(Some(u), "emails", None),
                    filter: work.clone(),
                    sub: Some("value".into()),
                },
            ),
            (
                &format!("{e}:manager.value"),
                PatchPath {
                    attr: attr(Some(e), "manager", Some("value")),
                    filter: None,
                    sub: None,
                },
            ),
        ] {
            assert_eq!(parse_path(input), Ok(expected.clone()), "{input}");
            assert_eq!(parse_path(&expected.to_string()), Ok(expected), "{input}");
        }
        for (input, position, message) in [
            ("", 0, "empty path"),
            ("  ", 0, "empty path"),
            ("(members)", 0, "expected an attribute path"),
            ("\"members\"", 0, "expected an attribute path"),
            ("name.x[a eq 1]", 6, "cannot follow a sub-attribute"),
            ("members junk", 8, "trailing input"),
            ("members[value eq 1]junk", 19, "trailing input"),
            ("members[value eq 1].value eq 2", 26, "trailing input"),
            (
                "members[value eq 1].x.y",
                20,
                "expected a sub-attribute name",
            ),
            (
                "members[value eq 1",
                18,
                "expected \"and\", \"or\" or \"]\"",
            ),
            ("members[]", 8, "unexpected \"]\""),
            ("members[a[b pr] pr]", 9, "nested value filters"),
            ("name.", 5, "invalid sub-attribute name"),
            ("members.value.display", 8, "invalid sub-attribute name"),
            ("emails\u{e9}", 6, "unexpected character"),
        ] {
            path_fails(input, position, message);
        }
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z$][a-zA-Z0-9_-]{0,6}"
    }

    fn attr_strategy(plain: bool, with_sub: bool) -> BoxedStrategy<AttrPath> {
        if plain {
            return name().prop_map(|n| attr(None, &n, None)).boxed();
        }
        let urn = proptest::option::of("[uU][rR][nN]:[a-zA-Z]{1,5}(:[a-zA-Z0-9.-]{1,6}){0,5}");
        let sub = if with_sub {
            proptest::option::of(name()).boxed()
        } else {
            Just(None).boxed()
        };
        (urn, name(), sub)
            .prop_map(|(urn, name, sub)| AttrPath { urn, name, sub })
            .boxed()
    }

    fn value_strategy() -> impl Strategy<Value = CompValue> {
        prop_oneof![
            Just(CompValue::Null),
            any::<bool>().prop_map(CompValue::Bool),
            any::<i64>().prop_map(|n| CompValue::Number(n.into())),
            any::<u64>().prop_map(|n| CompValue::Number(n.into())),
            any::<f64>().prop_filter_map("finite", |x| {
                serde_json::Number::from_f64(x).map(CompValue::Number)
            }),
            any::<String>().prop_map(CompValue::String),
            "[ -~]{0,12}".prop_map(CompValue::String),
        ]
    }

    fn op_strategy() -> impl Strategy<Value = CompareOp> {
        proptest::sample::select(vec![
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ])
    }

    fn filter_strategy(plain: bool) -> BoxedStrategy<Filter> {
        let compare = (attr_strategy(plain, true), op_strategy(), value_strategy())
            .prop_map(|(path, op, value)| Filter::Compare { path, op, value });
        let present = attr_strategy(plain, true).prop_map(Filter::Present);
        let leaf = if plain {
            prop_oneof![compare, present].boxed()
        } else {
            let vp =
                (attr_strategy(false, false), filter_strategy(true)).prop_map(|(attr, filter)| {
                    Filter::ValuePath {
                        attr,
                        filter: Box::new(filter),
                    }
                });
            prop_oneof![2 => compare, 1 => present, 1 => vp].boxed()
        };
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|a| Filter::Not(Box::new(a))),
            ]
        })
        .boxed()
    }

    fn patch_path_strategy() -> impl Strategy<Value = PatchPath> {
        prop_oneof![
            attr_strategy(false, true).prop_map(|attr| PatchPath {
                attr,
                filter: None,
                sub: None
            }),
            (
                attr_strategy(false, false),
                filter_strategy(true),
                proptest::option::of(name())
            )
                .prop_map(|(attr, filter, sub)| PatchPath {
                    attr,
                    filter: Some(filter),
                    sub
                }),
        ]
    }

    fn token_soup() -> impl Strategy<Value = String> {
        let tokens = proptest::sample::select(vec![
            "(",
            ")",
            "[",
            "]",
            ".",
            "\"",
            "\"x\"",
            "\"\\u00e9\"",
            "\\",
            "not",
            "NOT (",
            "and",
            "or",
            "eq",
            "Pr",
            "gt",
            "emails",
            "type",
            "value",
            "urn:a:b:c",
            "urn:",
            ":",
            "1",
            "-1.5e3",
            "true",
            "null",
            "$ref",
            "é",
            "日",
            " ",
            "\t",
            "a.b",
            "-",
            "e",
            "\u{0}",
        ]);
        proptest::collection::vec(tokens, 0..24).prop_map(|t| t.concat())
    }

    fn no_panic_and_round_trip(input: &str) -> Result<(), TestCaseError> {
        if let Ok(f) = parse(input) {
            prop_assert_eq!(parse(&f.to_string()), Ok(f));
        }
        if let Ok(p) = parse_path(input) {
            prop_assert_eq!(parse_path(&p.to_string()), Ok(p));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_strings_never_panic(input in any::<String>()) {
            no_panic_and_round_trip(&input)?;
        }

        #[test]
        fn filterish_strings_never_panic(input in token_soup()) {
            no_panic_and_round_trip(&input)?;
        }

        #[test]
        fn filter_round_trips(f in filter_strategy(false)) {
            let printed = f.to_string();
            prop_assert_eq!(parse(&printed), Ok(f), "{}", printed);
        }

        #[test]
        fn patch_path_round_trips(p in patch_path_strategy()) {
            let printed = p.to_string();
            prop_assert_eq!(parse_path(&printed), Ok(p), "{}", printed);
        }
    }
}
