//! Label and field selectors (`?labelSelector=` and `?fieldSelector=`), parsed and matched with the
//! semantics of k8s.io/apimachinery (`pkg/labels/selector.go`, `pkg/fields/selector.go`) and the
//! per-resource field-label allow-lists of the upstream API server.
//!
//! Owns: both selector grammars, label key/value validation, matching against a label map or a JSON
//! object, turning a `metav1.LabelSelector` JSON value into a selector, and `validate_for`.
//! Pure: no I/O; must not depend on the HTTP server, the store, or any other module of the crate.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

/// Why a selector was rejected. Every message reads like the upstream API server's; the server turns
/// any of them into a 400 `BadRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// One requirement of a label selector does not parse or validate.
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// A label selector is malformed outside a requirement (separators, a bad `metav1.LabelSelector`).
    #[error("{0}")]
    Invalid(String),
    /// A field selector term without `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm { selector: String, term: String },
    /// A backslash in a field selector value that escapes something other than `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    Escape(String),
    /// A `,` or `=` in a field selector value that is not escaped.
    #[error("invalid field selector: unescaped character in value: {0}")]
    Unescaped(char),
    /// A field that the resource does not allow selecting on.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

// ---------------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Validates like upstream `labels.NewRequirement`; the message names the offending key or value.
    fn new(key: &str, op: Operator, values: Vec<String>) -> Result<Self, String> {
        validate_label_key(key)?;
        match op {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(format!("key {key:?}: for 'in', 'notin' operators, values set can't be empty"));
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
                return Err(format!("key {key:?}: exact-match compatibility requires one single value"));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(format!("key {key:?}: values set must be empty for exists and does not exist"));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err(format!("key {key:?}: for 'Gt', 'Lt' operators, exactly one value is required"));
                }
                if let Some(bad) = values.iter().find(|v| v.parse::<i64>().is_err()) {
                    return Err(format!(
                        "invalid value {bad:?} for key {key:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                    ));
                }
            }
            _ => {}
        }
        for value in &values {
            if let Err(detail) = validate_label_value(value) {
                return Err(format!("invalid label value {value:?} for key {key:?}: {detail}"));
            }
        }
        Ok(Self { key: key.to_owned(), op, values })
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let found = labels.get(&self.key);
        match self.op {
            Operator::In | Operator::Equals | Operator::DoubleEquals => found.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn | Operator::NotEquals => found.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => found.is_some(),
            Operator::DoesNotExist => found.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), [want]) = (found, self.values.as_slice()) else { return false };
                match (have.parse::<i64>(), want.parse::<i64>()) {
                    (Ok(have), Ok(want)) if self.op == Operator::GreaterThan => have > want,
                    (Ok(have), Ok(want)) => have < want,
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Operator::DoesNotExist => return write!(f, "!{}", self.key),
            Operator::Exists => return f.write_str(&self.key),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
        };
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        let values = values.join(",");
        match self.op {
            Operator::In | Operator::NotIn => write!(f, "{}{op}({values})", self.key),
            _ => write!(f, "{}{op}{values}", self.key),
        }
    }
}

/// A parsed label selector: requirements that must all hold, sorted by key like upstream's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// Set for a null `metav1.LabelSelector`, which selects nothing (upstream `labels.Nothing()`).
    nothing: bool,
}

impl LabelSelector {
    /// Parses the `?labelSelector=` syntax: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`,
    /// `!k`, `k>1`, `k<1`, comma separated, whitespace tolerated. An empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser { items: lex(s), position: 0 };
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements, nothing: false })
    }

    /// Converts a `metav1.LabelSelector` (`matchLabels` / `matchExpressions`) as upstream
    /// `LabelSelectorAsSelector` does: null selects nothing, `{}` selects everything.
    pub fn from_json(selector: &Value) -> Result<Self, SelectorError> {
        let object = match selector {
            Value::Null => return Ok(Self { requirements: Vec::new(), nothing: true }),
            Value::Object(object) => object,
            other => return Err(SelectorError::Invalid(format!("a label selector must be an object, not {other}"))),
        };
        let mut requirements = Vec::new();
        match object.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let value = value.as_str().ok_or_else(|| {
                        SelectorError::Invalid(format!("matchLabels[{key:?}] must be a string, not {value}"))
                    })?;
                    requirements.push(
                        Requirement::new(key, Operator::Equals, vec![value.to_owned()])
                            .map_err(SelectorError::Invalid)?,
                    );
                }
            }
            Some(other) => return Err(SelectorError::Invalid(format!("matchLabels must be an object, not {other}"))),
        }
        match object.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(expressions)) => {
                for expression in expressions {
                    requirements.push(expression_requirement(expression)?);
                }
            }
            Some(other) => return Err(SelectorError::Invalid(format!("matchExpressions must be a list, not {other}"))),
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements, nothing: false })
    }

    /// Whether every requirement holds for these labels. `!=` and `notin` hold when the key is absent.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector selects everything (no requirements).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }
}

/// The canonical form, as upstream `Selector.String()`: requirements by key, set values sorted.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

fn expression_requirement(expression: &Value) -> Result<Requirement, SelectorError> {
    let key = expression.get("key").and_then(Value::as_str).unwrap_or_default();
    let operator = expression.get("operator").and_then(Value::as_str).unwrap_or_default();
    let op = match operator {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => return Err(SelectorError::Invalid(format!("{other:?} is not a valid label selector operator"))),
    };
    let values = match expression.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| SelectorError::Invalid(format!("values of key {key:?} must be strings, not {v}")))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(SelectorError::Invalid(format!("values of key {key:?} must be a list, not {other}")))
        }
    };
    Requirement::new(key, op, values).map_err(SelectorError::Invalid)
}

// --- lexer and parser, after upstream's -------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

#[derive(Debug, Clone)]
struct Item {
    token: Token,
    literal: String,
}

fn keyword(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits a label selector into tokens; the last one is always `End`.
fn lex(s: &str) -> Vec<Item> {
    let bytes = s.as_bytes();
    let mut items = Vec::new();
    let mut pos = 0;
    loop {
        while pos < bytes.len() && is_whitespace(bytes[pos]) {
            pos += 1;
        }
        if pos == bytes.len() {
            items.push(Item { token: Token::End, literal: String::new() });
            return items;
        }
        let start = pos;
        if is_special(bytes[pos]) {
            // The longest run of special characters that still spells an operator.
            let mut best: Option<(Token, usize)> = None;
            while pos < bytes.len() && is_special(bytes[pos]) {
                pos += 1;
                match keyword(&s[start..pos]) {
                    Some(token) => best = Some((token, pos)),
                    None if best.is_some() => break,
                    None => {}
                }
            }
            match best {
                Some((token, end)) => {
                    pos = end;
                    items.push(Item { token, literal: s[start..end].to_owned() });
                }
                None => {
                    let found = &s[start..pos];
                    items.push(Item {
                        token: Token::Error,
                        literal: format!("error expected: keyword found '{found}'"),
                    });
                }
            }
        } else {
            while pos < bytes.len() && !is_special(bytes[pos]) && !is_whitespace(bytes[pos]) {
                pos += 1;
            }
            let literal = &s[start..pos];
            let token = keyword(literal).unwrap_or(Token::Identifier);
            items.push(Item { token, literal: literal.to_owned() });
        }
    }
}

/// Whether `in`/`notin` are operators (after a key) or plain values (anywhere else).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<Item>,
    position: usize,
}

impl Parser {
    fn peek(&self, context: Context) -> (Token, String) {
        let item = self.items.get(self.position).or_else(|| self.items.last());
        let (token, literal) = item.map_or((Token::End, String::new()), |i| (i.token, i.literal.clone()));
        match token {
            Token::In | Token::NotIn if context == Context::Values => (Token::Identifier, literal),
            _ => (token, literal),
        }
    }

    fn next(&mut self, context: Context) -> (Token, String) {
        let item = self.peek(context);
        if self.position < self.items.len() {
            self.position += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.peek(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    requirements.push(self.parse_requirement().map_err(SelectorError::Requirement)?);
                    let (token, literal) = self.next(Context::Values);
                    match token {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let (after, literal) = self.peek(Context::Values);
                            if after != Token::Identifier && after != Token::DoesNotExist {
                                return Err(SelectorError::Invalid(format!(
                                    "found '{literal}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(SelectorError::Invalid(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            )))
                        }
                    }
                }
                Token::End => return Ok(requirements),
                _ => {
                    return Err(SelectorError::Invalid(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    )))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (mut token, mut key) = self.next(Context::Values);
        let negated = token == Token::DoesNotExist;
        if negated {
            (token, key) = self.next(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{key}', expected: identifier"));
        }
        validate_label_key(&key)?;
        if negated {
            return Requirement::new(&key, Operator::DoesNotExist, Vec::new());
        }
        if matches!(self.peek(Context::Values).0, Token::End | Token::Comma) {
            return Requirement::new(&key, Operator::Exists, Vec::new());
        }
        let (token, literal) = self.next(Context::KeyAndOperator);
        let op = match token {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            _ => return Err(format!("found '{literal}' after key {key:?}, expected: in, notin, =, ==, !=, gt, lt")),
        };
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(&key, op, values.into_iter().collect())
    }

    /// `( v1, v2, ... )`; empty members are the empty value, as upstream.
    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, literal) = self.next(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.peek(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers()?;
                let (token, closing) = self.next(Context::Values);
                if token != Token::ClosedPar {
                    return Err(format!("found '{closing}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.next(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!("found '{literal}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers(&mut self) -> Result<BTreeSet<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            let (token, literal) = self.next(Context::Values);
            match token {
                Token::Identifier => {
                    values.insert(literal);
                    let (after, literal) = self.peek(Context::Values);
                    match after {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    match self.peek(Context::Values).0 {
                        Token::ClosedPar => {
                            values.insert(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            values.insert(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        if matches!(self.peek(Context::Values).0, Token::End | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        match self.next(Context::Values) {
            (Token::Identifier, value) => Ok(BTreeSet::from([value])),
            (_, literal) => Err(format!("found '{literal}', expected: identifier")),
        }
    }
}

// --- validation, after k8s.io/apimachinery/pkg/util/validation ----------------------------------------

const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;
const QUALIFIED_NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
     with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')";
const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
     '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')";
const LABEL_VALUE_RULE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', \
     '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')";

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        matches!((b.first(), b.last()), (Some(f), Some(l)) if alnum(f) && alnum(l))
            && b.iter().all(|c| alnum(c) || *c == b'-')
    })
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
fn validate_label_key(key: &str) -> Result<(), String> {
    let mut problems = Vec::new();
    let name = match key.split('/').collect::<Vec<_>>().as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".to_owned());
            } else {
                if prefix.len() > SUBDOMAIN_MAX {
                    problems.push(format!("prefix part must be no more than {SUBDOMAIN_MAX} characters"));
                }
                if !is_dns1123_subdomain(prefix) {
                    problems.push(format!("prefix part {SUBDOMAIN_RULE}"));
                }
            }
            *name
        }
        _ => {
            problems.push(format!(
                "a qualified name {QUALIFIED_NAME_RULE} with an optional DNS subdomain prefix and '/' \
                 (e.g. 'example.com/MyName')"
            ));
            return Err(invalid_key(key, &problems));
        }
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".to_owned());
    } else if name.len() > QUALIFIED_NAME_MAX {
        problems.push(format!("name part must be no more than {QUALIFIED_NAME_MAX} characters"));
    }
    if !is_qualified_name_part(name) {
        problems.push(format!("name part {QUALIFIED_NAME_RULE}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(invalid_key(key, &problems))
    }
}

fn invalid_key(key: &str, problems: &[String]) -> String {
    format!("invalid label key {key:?}: {}", problems.join("; "))
}

/// A label value: empty, or at most 63 characters of `[A-Za-z0-9._-]` with alphanumeric ends.
fn validate_label_value(value: &str) -> Result<(), String> {
    let mut problems = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        problems.push(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        problems.push(LABEL_VALUE_RULE.to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    negated: bool,
}

/// A parsed field selector: `field=value` / `field==value` / `field!=value` terms that must all hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses the `?fieldSelector=` syntax. Values may escape `\,`, `\=` and `\\`; an empty string
    /// selects everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::with_capacity(parts.len());
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, operator, value)) = split_term(part) else {
                return Err(SelectorError::FieldTerm { selector: s.to_owned(), term: part.to_owned() });
            };
            terms.push(FieldTerm { field: field.to_owned(), value: unescape(value)?, negated: operator == "!=" });
        }
        Ok(Self { terms })
    }

    /// Whether every term holds for this object. A field is read by its dotted path; a missing field
    /// reads as the empty string (as `false` or `0` for the boolean and count fields upstream selects
    /// on), so `spec.nodeName=` selects unscheduled pods.
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|term| (field_value(object, &term.field) == term.value) != term.negated)
    }

    /// Whether the selector selects everything (no terms).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value a `field=value` (or `==`) term pins the field to, if there is one; lets a caller use
    /// an index (e.g. pods by `spec.nodeName`).
    pub fn exact_match(&self, field: &str) -> Option<&str> {
        self.terms.iter().find(|t| t.field == field && !t.negated).map(|t| t.value.as_str())
    }

    /// Checks every field against the resource's allow-list, as upstream's field label conversion
    /// functions do: `metadata.name` and `metadata.namespace` everywhere, plus per-resource fields.
    pub fn validate_for(&self, group: &str, resource: &str) -> Result<(), SelectorError> {
        match self.terms.iter().find(|t| !field_allowed(group, resource, &t.field)) {
            Some(term) => Err(SelectorError::UnsupportedField(term.field.clone())),
            None => Ok(()),
        }
    }
}

/// The canonical form, as upstream's: terms in order, values escaped.
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if term.negated { "!=" } else { "=" };
            write!(f, "{}{op}{}", term.field, escape(&term.value))?;
        }
        Ok(())
    }
}

fn field_allowed(group: &str, resource: &str, field: &str) -> bool {
    matches!(field, "metadata.name" | "metadata.namespace") || selectable_fields(group, resource).contains(&field)
}

/// The per-resource selectable fields (besides `metadata.name` and `metadata.namespace`).
fn selectable_fields(group: &str, resource: &str) -> &'static [&'static str] {
    match (group, resource) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
            // What old v1 clients send for spec.nodeName.
            "spec.host",
        ],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "secrets") => &["type"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        ("certificates.k8s.io", "certificatesigningrequests") => &["spec.signerName"],
        _ => &[],
    }
}

/// The part of `object` that label and field selectors of this resource can read: name, namespace,
/// labels and the resource's selectable fields (with the fields those are derived from). Caches keep
/// this instead of whole objects, so filtering does not need to parse every object.
pub fn selectable_projection(group: &str, resource: &str, object: &Value) -> Value {
    let mut out = serde_json::Map::new();
    let mut copy = |path: &str| {
        let Some(found) = path.split('.').try_fold(object, |value, key| value.get(key)) else { return };
        let mut parts = path.split('.').peekable();
        let mut node = &mut out;
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                node.insert(part.to_owned(), found.clone());
                return;
            }
            let next = node.entry(part.to_owned()).or_insert_with(|| Value::Object(serde_json::Map::new()));
            match next.as_object_mut() {
                Some(map) => node = map,
                None => return,
            }
        }
    };
    for path in ["metadata.name", "metadata.namespace", "metadata.labels"] {
        copy(path);
    }
    for field in selectable_fields(group, resource) {
        match *field {
            "spec.host" => copy("spec.nodeName"),
            "status.successful" => copy("status.succeeded"),
            "status.podIP" => {
                copy("status.podIP");
                copy("status.podIPs");
            }
            "source" => {
                copy("source.component");
                copy("reportingComponent");
            }
            other => copy(other),
        }
    }
    Value::Object(out)
}

/// The string upstream's selectable-field set holds for `field`.
fn field_value(object: &Value, field: &str) -> String {
    match field {
        "spec.host" => path_value(object, "spec.nodeName", ""),
        "spec.hostNetwork" | "spec.unschedulable" => path_value(object, field, "false"),
        "status.replicas" => path_value(object, field, "0"),
        "status.successful" => path_value(object, "status.succeeded", "0"),
        "status.podIP" => match object.pointer("/status/podIPs/0/ip").and_then(Value::as_str) {
            Some(ip) => ip.to_owned(),
            None => path_value(object, field, ""),
        },
        "source" => match path_value(object, "source.component", "") {
            component if component.is_empty() => path_value(object, "reportingComponent", ""),
            component => component,
        },
        _ => path_value(object, field, ""),
    }
}

fn path_value(object: &Value, path: &str, missing: &str) -> String {
    let found = path.split('.').try_fold(object, |value, key| value.get(key));
    match found {
        None | Some(Value::Null) => missing.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(_) | Value::Object(_)) => String::new(),
    }
}

/// Splits on commas that are not escaped.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The first `!=`, `==` or `=` (tried in that order at each position) splits field from value.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    term.char_indices().find_map(|(i, _)| {
        ["!=", "==", "="]
            .into_iter()
            .find(|op| term[i..].starts_with(op))
            .map(|op| (&term[..i], op, &term[i + op.len()..]))
    })
}

fn unescape(value: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => return Err(SelectorError::Escape(format!("\\{other}"))),
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(SelectorError::Unescaped(c)),
            other => out.push(other),
        }
    }
    if escaped {
        return Err(SelectorError::Escape("\\".to_owned()));
    }
    Ok(out)
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn label_selector_operators_match_as_upstream() {
        let web = labels(&[("app", "web"), ("tier", "front"), ("replicas", "3")]);
        let bare = labels(&[]);
        let cases: &[(&str, bool, bool)] = &[
            // selector, matches `web`, matches `bare`
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app=db", false, false),
            ("app!=db", true, true),
            ("app!=web", false, true),
            ("tier in (front,back)", true, false),
            ("tier in (back)", false, false),
            ("tier notin (back)", true, true),
            ("tier notin (front)", false, true),
            ("app", true, false),
            ("!app", false, true),
            ("!missing", true, true),
            ("replicas>2", true, false),
            ("replicas>3", false, false),
            ("replicas<4", true, false),
            ("app>1", false, false),
            ("app=web,tier=front", true, false),
            ("app=web,tier=back", false, false),
            ("  app = web ,  tier in ( front , back )  ", true, false),
            ("app=", false, false),
            ("tier in (in,notin)", false, false),
        ];
        for (selector, want_web, want_bare) in cases {
            let parsed = LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
            assert_eq!(parsed.matches(&web), *want_web, "{selector} on web");
            assert_eq!(parsed.matches(&bare), *want_bare, "{selector} on no labels");
        }
    }

    #[test]
    fn label_selector_empty_values_and_keywords_as_values() {
        let empty = labels(&[("a", "")]);
        for selector in ["a=", "a==", "a in ()", "a in (,x)", "a in (x,)", "a in (x,,y)"] {
            let parsed = LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
            assert!(parsed.matches(&empty), "{selector}");
        }
        let keyword = labels(&[("k", "in")]);
        assert!(LabelSelector::parse("k in (in)").expect("parse").matches(&keyword));
        assert!(LabelSelector::parse("k=in").expect("parse").matches(&keyword));
    }

    #[test]
    fn label_selector_keys_with_prefixes() {
        let node = labels(&[("node-role.kubernetes.io/control-plane", ""), ("kubernetes.io/os", "linux")]);
        let parsed =
            LabelSelector::parse("node-role.kubernetes.io/control-plane,kubernetes.io/os=linux").expect("parse");
        assert!(parsed.matches(&node));
        assert!(!parsed.is_empty());
        assert!(LabelSelector::parse("").expect("parse").is_empty());
    }

    #[test]
    fn label_selector_syntax_errors_name_the_offending_part() {
        let cases: &[(&str, &str)] = &[
            ("a=b,", "found '', expected: identifier after ','"),
            ("a=b c=d", "found 'c', expected: ',' or 'end of string'"),
            ("=b", "found '=', expected: !, identifier, or 'end of string'"),
            ("a in b", "unable to parse requirement: found 'b' expected: '('"),
            ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
            ("a (b)", "unable to parse requirement: found '(' after key \"a\""),
            ("!", "unable to parse requirement: found '', expected: identifier"),
            ("a=b=c", "found '=', expected: ',' or 'end of string'"),
            ("a>b", "unable to parse requirement: invalid value \"b\" for key \"a\""),
            ("a b c", "unable to parse requirement: found 'b' after key \"a\""),
            ("a/b/c=x", "unable to parse requirement: invalid label key \"a/b/c\""),
            ("Example.com/x=y", "unable to parse requirement: invalid label key \"Example.com/x\": prefix part"),
            ("-a=b", "unable to parse requirement: invalid label key \"-a\": name part must consist"),
            ("a=-b", "unable to parse requirement: invalid label value \"-b\" for key \"a\""),
            ("a=b!c", "found '!', expected: ',' or 'end of string'"),
        ];
        for (selector, want) in cases {
            let err = LabelSelector::parse(selector).expect_err(selector).to_string();
            assert!(err.starts_with(want), "{selector}: got {err:?}, want prefix {want:?}");
        }
        let long = format!("a={}", "x".repeat(64));
        let err = LabelSelector::parse(&long).expect_err("long value").to_string();
        assert!(err.contains("must be no more than 63 characters"), "{err}");
        let long_key = format!("{}=x", "k".repeat(64));
        let err = LabelSelector::parse(&long_key).expect_err("long key").to_string();
        assert!(err.contains("name part must be no more than 63 characters"), "{err}");
    }

    #[test]
    fn label_selector_prints_canonically() {
        let parsed = LabelSelector::parse("tier notin (b,a), app=web, !gone, x, n>1, k==v, j!=w").expect("parse");
        assert_eq!(parsed.to_string(), "app=web,!gone,j!=w,k==v,n>1,tier notin (a,b),x");
    }

    #[test]
    fn label_selector_from_json_as_label_selector_as_selector() {
        let sel = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "back"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }))
        .expect("from_json");
        assert_eq!(sel.to_string(), "app=web,!canary,tier in (back,front)");
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "back")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "back"), ("canary", "1")])));

        let everything = LabelSelector::from_json(&json!({})).expect("empty");
        assert!(everything.is_empty() && everything.matches(&labels(&[])));
        let nothing = LabelSelector::from_json(&Value::Null).expect("null");
        assert!(!nothing.is_empty() && !nothing.matches(&labels(&[])));
        assert_eq!(nothing.to_string(), "");

        let bad = LabelSelector::from_json(&json!({"matchExpressions": [{"key": "a", "operator": "Gt"}]}));
        assert_eq!(bad.expect_err("bad operator").to_string(), "\"Gt\" is not a valid label selector operator");
        let bad =
            LabelSelector::from_json(&json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}));
        assert!(bad.expect_err("empty in").to_string().contains("values set can't be empty"));
    }

    fn pod(node: Option<&str>, phase: &str) -> Value {
        let mut pod = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"restartPolicy": "Always"},
            "status": {"phase": phase, "podIPs": [{"ip": "10.0.0.7"}]},
        });
        if let Some(node) = node {
            pod["spec"]["nodeName"] = json!(node);
        }
        pod
    }

    #[test]
    fn field_selector_matches_dotted_paths() {
        let scheduled = pod(Some("node-a"), "Running");
        let pending = pod(None, "Pending");
        let cases: &[(&str, bool, bool)] = &[
            // selector, matches `scheduled`, matches `pending`
            ("", true, true),
            ("metadata.name=web-1", true, true),
            ("metadata.name==web-1", true, true),
            ("metadata.name!=web-1", false, false),
            ("metadata.namespace=default,status.phase=Running", true, false),
            ("spec.nodeName=node-a", true, false),
            ("spec.nodeName=", false, true),
            ("spec.nodeName!=", true, false),
            ("spec.host=node-a", true, false),
            ("status.phase!=Running", false, true),
            ("status.podIP=10.0.0.7", true, true),
            ("spec.hostNetwork=false", true, true),
            ("spec.hostNetwork=", false, false),
            ("spec.missing=", true, true),
        ];
        for (selector, want_scheduled, want_pending) in cases {
            let parsed = FieldSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
            assert_eq!(parsed.matches(&scheduled), *want_scheduled, "{selector} on scheduled");
            assert_eq!(parsed.matches(&pending), *want_pending, "{selector} on pending");
        }
    }

    #[test]
    fn field_selector_values_with_escapes() {
        let event = json!({"metadata": {"name": "e"}, "reason": "a,b=c\\d", "count": 3, "source": {}, "reportingComponent": "kubelet"});
        let parsed = FieldSelector::parse(r"reason=a\,b\=c\\d").expect("parse");
        assert!(parsed.matches(&event));
        assert_eq!(parsed.to_string(), r"reason=a\,b\=c\\d");
        assert_eq!(parsed.exact_match("reason"), Some("a,b=c\\d"));
        assert!(FieldSelector::parse("count=3").expect("parse").matches(&event));
        assert!(FieldSelector::parse("source=kubelet").expect("parse").matches(&event));
        let two = FieldSelector::parse(r"reason!=x\,y,metadata.name=e").expect("parse");
        assert!(two.matches(&event));
        assert_eq!(two.to_string(), r"metadata.name=e,reason!=x\,y");
        assert_eq!(two.exact_match("reason"), None);
    }

    #[test]
    fn field_selector_syntax_errors() {
        let cases: &[(&str, &str)] = &[
            ("foo", "invalid selector: 'foo'; can't understand 'foo'"),
            ("a=b,foo", "invalid selector: 'a=b,foo'; can't understand 'foo'"),
            (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
            ("a=b\\", r"invalid field selector: invalid escape sequence: \"),
            ("a=b=c", "invalid field selector: unescaped character in value: ="),
        ];
        for (selector, want) in cases {
            assert_eq!(FieldSelector::parse(selector).expect_err(selector).to_string(), *want, "{selector}");
        }
        assert!(FieldSelector::parse("").expect("empty").is_empty());
        assert!(FieldSelector::parse(",").expect("commas").is_empty());
    }

    #[test]
    fn field_selector_validate_for_upstream_allow_lists() {
        let cases: &[(&str, &str, &str, bool)] = &[
            ("", "pods", "spec.nodeName=a", true),
            ("", "pods", "status.phase=Running,spec.schedulerName=x,status.nominatedNodeName=", true),
            ("", "pods", "spec.hostNetwork=true,spec.serviceAccountName=x,status.podIP=1.2.3.4", true),
            ("", "pods", "spec.restartPolicy=Never,metadata.namespace=x", true),
            ("", "pods", "spec.containers=x", false),
            ("", "configmaps", "metadata.name=a", true),
            ("", "configmaps", "data.x=a", false),
            ("", "events", "involvedObject.kind=Pod,involvedObject.name=a,involvedObject.uid=u", true),
            ("", "events", "involvedObject.fieldPath=x,involvedObject.resourceVersion=1", true),
            ("", "events", "involvedObject.apiVersion=v1,involvedObject.namespace=d", true),
            ("", "events", "reason=Started,type=Normal,source=kubelet,reportingComponent=k", true),
            ("", "events", "message=x", false),
            ("", "secrets", "type=Opaque", true),
            ("", "configmaps", "type=Opaque", false),
            ("", "nodes", "spec.unschedulable=false,metadata.name=n", true),
            ("", "namespaces", "status.phase=Active", true),
            ("apps", "replicasets", "status.replicas=0", true),
            ("apps", "deployments", "status.replicas=0", false),
            ("batch", "jobs", "status.successful=1", true),
            ("apps", "deployments", "foo=bar", false),
        ];
        for (group, resource, selector, ok) in cases {
            let parsed = FieldSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
            assert_eq!(parsed.validate_for(group, resource).is_ok(), *ok, "{group}/{resource}: {selector}");
        }
        let err = FieldSelector::parse("foo=bar").expect("parse").validate_for("", "pods").expect_err("foo");
        assert_eq!(err, SelectorError::UnsupportedField("foo".to_owned()));
        assert_eq!(err.to_string(), "field label not supported: foo");
    }

    #[test]
    fn field_selector_reads_typed_and_defaulted_fields() {
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        assert!(FieldSelector::parse("spec.unschedulable=false").expect("parse").matches(&node));
        let cordoned = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert!(FieldSelector::parse("spec.unschedulable=true").expect("parse").matches(&cordoned));
        let job = json!({"status": {"succeeded": 2}});
        assert!(FieldSelector::parse("status.successful=2").expect("parse").matches(&job));
        assert!(FieldSelector::parse("status.replicas=0").expect("parse").matches(&job));
    }
}
