//! Pointwise formulas: sources, exact solutions, initial data and the nonlinear parts of residuals,
//! written as text and evaluated in Taylor mode.
//!
//! ```text
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/') unary)*
//! unary   := ('+' | '-')* power
//! power   := primary ['^' unary]
//! primary := number | 'pi' | 'd' | 't' | 'u' | 'x' | 'y' | 'z' | 'x[' expr ']' | 'd[' idx (',' idx)* ']'
//!          | name | func '(' expr ')' | 'sum(' name ',' expr ',' expr ',' expr ')' | '(' expr ')'
//! idx     := integer | 't' | name
//! func    := sin cos tan exp log tanh sqrt sinh cosh sech atan abs
//! ```
//! `x[i]` is spatial coordinate `i` (0-based; `x`, `y`, `z` are `x[0]`, `x[1]`, `x[2]`), `t` the
//! time (the input coordinate after the `d` spatial ones), `d` the spatial dimension, `u` the
//! solution and `d[i, j, …]` its partial `∂_i∂_j… u` (indices as in the operator syntax, the
//! time being `t` or `d`; a bound sum variable may index a partial: `sum(i, 0, d-1, d[i]^2)` is
//! `‖∇u‖²`). `sum(i, a, b, body)` is `Σ_{i=a}^{b} body` with `i` bound inside `body` (bounds and
//! `x[...]` indices are integer expressions in numbers, `d` and bound names).
//!
//! A formula compiles once into a node tree; [`Workspace`] holds one Taylor series per node, so an
//! evaluation allocates nothing, also inside sums over a million coordinates. Every operation
//! has its Taylor rule on normalised coefficients, so the same code gives values (order 0),
//! derivatives with respect to `u` and the partials (order 1, for the residual's backward pass)
//! and jets along any input curve (for the sources the engine derives from an exact solution).

use std::fmt;

/// A malformed formula: what went wrong and where (byte offset).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("formula error at position {position}: {message}")]
pub struct FormulaError {
    /// Byte offset into the formula text.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, FormulaError> {
    Err(FormulaError {
        position,
        message: message.into(),
    })
}

/// Deepest nesting of parentheses, calls and signs a formula may have.
const MAX_DEPTH: usize = 200;

/// Elementary functions a formula may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Sin,
    Cos,
    Tan,
    Exp,
    Log,
    Tanh,
    Sqrt,
    Sinh,
    Cosh,
    Sech,
    Atan,
    Abs,
}

const FUNCS: [(&str, Func); 12] = [
    ("sin", Func::Sin),
    ("cos", Func::Cos),
    ("tan", Func::Tan),
    ("exp", Func::Exp),
    ("log", Func::Log),
    ("tanh", Func::Tanh),
    ("sqrt", Func::Sqrt),
    ("sinh", Func::Sinh),
    ("cosh", Func::Cosh),
    ("sech", Func::Sech),
    ("atan", Func::Atan),
    ("abs", Func::Abs),
];

#[derive(Clone, Debug)]
enum Node {
    Const(f64),
    /// Spatial coordinate given by an index expression.
    Coord(usize),
    Time,
    /// Quantity `k`: 0 is `u`, `k ≥ 1` is partial `k − 1`.
    Quantity(usize),
    /// A partial whose indices use sum variables: pattern `p` of [`Formula::patterns`].
    PartialVar(usize),
    /// A bound sum variable (its value is the loop index).
    Var(usize),
    Dim,
    Neg(usize),
    Add(usize, usize),
    Sub(usize, usize),
    Mul(usize, usize),
    Div(usize, usize),
    /// `base ^ exponent`; `Some(p)` when the exponent is the constant `p`.
    Pow(usize, usize, Option<f64>),
    Call(Func, usize),
    /// `Σ_{var = lo}^{hi} body`.
    Sum {
        var: usize,
        lo: usize,
        hi: usize,
        body: usize,
    },
}

/// A compiled formula.
#[derive(Clone)]
pub struct Formula {
    text: String,
    nodes: Vec<Node>,
    root: usize,
    /// Distinct partials `d[...]` used (sorted indices), in order of first appearance.
    partials: Vec<Vec<usize>>,
    /// Index patterns of partials with sum variables.
    patterns: Vec<Vec<IndexTerm>>,
    /// Sorted partial index → its position in `partials`.
    partial_map: std::collections::HashMap<Vec<usize>, usize>,
    /// `partial_map` for `d[i]` and `d[i,i]` by coordinate (`u32::MAX`: not read), so that a sum
    /// over coordinates resolves its partials without hashing.
    first_order: Vec<u32>,
    diagonal: Vec<u32>,
    /// Per node: for a sum whose body holds no other sum, the body's nodes children first (its
    /// values are computed for many terms at once, [`Formula::lane_sum`]); empty otherwise.
    lane_order: Vec<Vec<usize>>,
    /// Per node: a sum over fixed bounds whose terms read no coordinate but their own `x[var]`
    /// (no time, no quantity): along a curve whose tangents touch few coordinates, only those
    /// terms change ([`Formula::series_through_point`]).
    coordinate_sum: Vec<bool>,
    uses_u: bool,
    uses_time: bool,
    vars: usize,
    scope: Scope,
}

impl fmt::Debug for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Formula({:?})", self.text)
    }
}

impl fmt::Display for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One index of a partial: a coordinate, or a bound sum variable.
#[derive(Clone, Copy, Debug, PartialEq)]
enum IndexTerm {
    Coord(usize),
    Var(usize),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(char),
    End,
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, FormulaError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() || c == b'.' {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text = &s[start..i];
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => out.push((start, Tok::Num(v))),
                _ => return err(start, format!("'{text}' is not a finite number")),
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((start, Tok::Ident(s[start..i].to_string())));
        } else if b"+-*/^()[],".contains(&c) {
            out.push((start, Tok::Op(c as char)));
            i += 1;
        } else {
            let ch = s[start..].chars().next().unwrap_or('?');
            return err(start, format!("unexpected character '{ch}'"));
        }
    }
    out.push((s.len(), Tok::End));
    Ok(out)
}

/// What a formula may refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope {
    /// Spatial dimension `d`.
    pub dim: usize,
    /// Whether `t` exists.
    pub time: bool,
    /// Whether `u` and its partials may appear.
    pub solution: bool,
}

struct Parser<'a> {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    scope: Scope,
    nodes: Vec<Node>,
    bound: Vec<String>,
    /// Number of sum variables created so far.
    vars: usize,
    /// Sum variable ids currently in scope, parallel to `bound`.
    bound_ids: Vec<usize>,
    partials: Vec<Vec<usize>>,
    patterns: Vec<Vec<IndexTerm>>,
    uses_u: bool,
    uses_time: bool,
    depth: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].1
    }
    fn at(&self) -> usize {
        self.toks[self.pos].0
    }
    fn found(&self) -> String {
        match self.peek() {
            Tok::End => "end of input".into(),
            Tok::Num(v) => format!("'{v}'"),
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Op(c) => format!("'{c}'"),
        }
    }
    fn expect(&mut self, c: char) -> Result<(), FormulaError> {
        if *self.peek() == Tok::Op(c) {
            self.pos += 1;
            Ok(())
        } else {
            err(self.at(), format!("expected '{c}', found {}", self.found()))
        }
    }
    fn push(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }
    fn enter(&mut self) -> Result<(), FormulaError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(self.at(), format!("nested more than {MAX_DEPTH} levels deep"));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<usize, FormulaError> {
        self.enter()?;
        let a = self.left_assoc(('+', Node::Add), ('-', Node::Sub), Parser::term)?;
        self.depth -= 1;
        Ok(a)
    }

    fn term(&mut self) -> Result<usize, FormulaError> {
        self.left_assoc(('*', Node::Mul), ('/', Node::Div), Parser::unary)
    }

    /// `next (op next)*` for two left-associative operators of one precedence level.
    fn left_assoc(
        &mut self,
        first: (char, fn(usize, usize) -> Node),
        second: (char, fn(usize, usize) -> Node),
        next: fn(&mut Self) -> Result<usize, FormulaError>,
    ) -> Result<usize, FormulaError> {
        let mut a = next(self)?;
        loop {
            let make = match self.peek() {
                Tok::Op(c) if *c == first.0 => first.1,
                Tok::Op(c) if *c == second.0 => second.1,
                _ => return Ok(a),
            };
            self.pos += 1;
            let b = next(self)?;
            a = self.push(make(a, b));
        }
    }

    fn unary(&mut self) -> Result<usize, FormulaError> {
        // signs are counted in a loop: a long run of them cannot overflow the stack
        let mut negative = false;
        while let Tok::Op(c @ ('+' | '-')) = *self.peek() {
            negative ^= c == '-';
            self.pos += 1;
        }
        let a = self.power()?;
        Ok(if negative { self.push(Node::Neg(a)) } else { a })
    }

    fn power(&mut self) -> Result<usize, FormulaError> {
        let base = self.primary()?;
        if *self.peek() != Tok::Op('^') {
            return Ok(base);
        }
        self.pos += 1;
        self.enter()?;
        let exp = self.unary()?;
        self.depth -= 1;
        let constant = self.constant(exp);
        Ok(self.push(Node::Pow(base, exp, constant)))
    }

    /// The value of node `i` if it is a constant expression (numbers and `d` only).
    fn constant(&self, i: usize) -> Option<f64> {
        let c = |j| self.constant(j);
        Some(match self.nodes[i] {
            Node::Const(v) => v,
            Node::Dim => self.scope.dim as f64,
            Node::Neg(a) => -c(a)?,
            Node::Add(a, b) => c(a)? + c(b)?,
            Node::Sub(a, b) => c(a)? - c(b)?,
            Node::Mul(a, b) => c(a)? * c(b)?,
            Node::Div(a, b) => c(a)? / c(b)?,
            _ => return None,
        })
    }

    fn index_list(&mut self) -> Result<Vec<IndexTerm>, FormulaError> {
        self.expect('[')?;
        let mut idx = Vec::new();
        loop {
            let at = self.at();
            let term = match *self.peek() {
                Tok::Ident(ref s) if self.bound.iter().any(|b| b == s) => {
                    let k = self.bound.iter().rposition(|b| b == s).expect("checked");
                    IndexTerm::Var(self.bound_ids[k])
                }
                Tok::Num(v) if v >= 0.0 && v.fract() == 0.0 => IndexTerm::Coord(v as usize),
                Tok::Ident(ref s) if s == "t" => {
                    if !self.scope.time {
                        return err(at, "'t' in d[...] but this problem has no time coordinate");
                    }
                    IndexTerm::Coord(self.scope.dim)
                }
                _ => return err(at, format!("expected a coordinate index, found {}", self.found())),
            };
            let limit = self.scope.dim + usize::from(self.scope.time);
            if let IndexTerm::Coord(i) = term
                && i >= limit
            {
                return err(at, format!("coordinate {i} is out of range (the input has {limit})"));
            }
            idx.push(term);
            self.pos += 1;
            match self.peek() {
                Tok::Op(',') => self.pos += 1,
                Tok::Op(']') => {
                    self.pos += 1;
                    break;
                }
                _ => return err(self.at(), format!("expected ',' or ']', found {}", self.found())),
            }
        }
        Ok(idx)
    }

    fn coord(&mut self, at: usize, i: usize) -> Result<usize, FormulaError> {
        if i >= self.scope.dim {
            return err(at, format!("coordinate {i} is out of range (d = {})", self.scope.dim));
        }
        let n = self.push(Node::Const(i as f64));
        Ok(self.push(Node::Coord(n)))
    }

    fn primary(&mut self) -> Result<usize, FormulaError> {
        let at = self.at();
        let tok = self.peek().clone();
        self.pos += 1;
        match tok {
            Tok::Num(v) => Ok(self.push(Node::Const(v))),
            Tok::Op('(') => {
                let e = self.expr()?;
                self.expect(')')?;
                Ok(e)
            }
            Tok::Ident(name) => self.named(at, &name),
            _ => {
                self.pos -= 1;
                err(at, format!("expected a number, a name or '(', found {}", self.found()))
            }
        }
    }

    fn named(&mut self, at: usize, name: &str) -> Result<usize, FormulaError> {
        if let Some(k) = self.bound.iter().rposition(|b| b == name) {
            let id = self.bound_ids[k];
            return Ok(self.push(Node::Var(id)));
        }
        let bracket = *self.peek() == Tok::Op('[');
        let paren = *self.peek() == Tok::Op('(');
        match name {
            "pi" => Ok(self.push(Node::Const(std::f64::consts::PI))),
            "d" if bracket => {
                if !self.scope.solution {
                    return err(at, "partials d[...] of u are not available in this formula");
                }
                let terms = self.index_list()?;
                if terms.iter().any(|t| matches!(t, IndexTerm::Var(_))) {
                    self.patterns.push(terms);
                    return Ok(self.push(Node::PartialVar(self.patterns.len() - 1)));
                }
                let mut idx: Vec<usize> = terms
                    .iter()
                    .map(|t| match t {
                        IndexTerm::Coord(c) => *c,
                        IndexTerm::Var(_) => unreachable!("handled above"),
                    })
                    .collect();
                idx.sort_unstable();
                if idx.is_empty() {
                    self.uses_u = true;
                    return Ok(self.push(Node::Quantity(0)));
                }
                let k = match self.partials.iter().position(|p| *p == idx) {
                    Some(k) => k,
                    None => {
                        self.partials.push(idx);
                        self.partials.len() - 1
                    }
                };
                Ok(self.push(Node::Quantity(k + 1)))
            }
            "d" => Ok(self.push(Node::Dim)),
            "t" => {
                if !self.scope.time {
                    return err(at, "'t' is used but this problem has no time coordinate");
                }
                self.uses_time = true;
                Ok(self.push(Node::Time))
            }
            "u" => {
                if !self.scope.solution {
                    return err(at, "'u' is not available in this formula");
                }
                self.uses_u = true;
                Ok(self.push(Node::Quantity(0)))
            }
            "x" if bracket => {
                self.pos += 1;
                self.enter()?;
                let i = self.expr()?;
                self.depth -= 1;
                self.expect(']')?;
                self.check_index(i, at)?;
                if let Some(v) = self.constant(i)
                    && (v < 0.0 || v >= self.scope.dim as f64 || v.fract() != 0.0)
                {
                    return err(at, format!("x[{v}] is out of range (d = {})", self.scope.dim));
                }
                Ok(self.push(Node::Coord(i)))
            }
            "x" => self.coord(at, 0),
            "y" => self.coord(at, 1),
            "z" => self.coord(at, 2),
            "sum" if paren => self.sum(at),
            _ if paren => {
                let Some(&(_, f)) = FUNCS.iter().find(|(n, _)| *n == name) else {
                    let known: Vec<&str> = FUNCS.iter().map(|(n, _)| *n).collect();
                    return err(
                        at,
                        format!("unknown function '{name}' (known: {}, sum)", known.join(", ")),
                    );
                };
                self.pos += 1;
                self.enter()?;
                let a = self.expr()?;
                self.depth -= 1;
                self.expect(')')?;
                Ok(self.push(Node::Call(f, a)))
            }
            _ => err(
                at,
                format!("unknown name '{name}' (names: x[i], x, y, z, t, u, d, d[...], pi, sum variables)"),
            ),
        }
    }

    /// An index expression may use numbers, `d` and bound variables only.
    fn check_index(&self, i: usize, at: usize) -> Result<(), FormulaError> {
        let ok = |j| self.check_index(j, at);
        match self.nodes[i] {
            Node::Const(_) | Node::Dim | Node::Var(_) => Ok(()),
            Node::Neg(a) => ok(a),
            Node::Add(a, b) | Node::Sub(a, b) | Node::Mul(a, b) | Node::Div(a, b) => {
                ok(a)?;
                ok(b)
            }
            _ => err(at, "an index or sum bound may use only numbers, d and sum variables"),
        }
    }

    fn sum(&mut self, at: usize) -> Result<usize, FormulaError> {
        self.expect('(')?;
        let var_at = self.at();
        let Tok::Ident(var) = self.peek().clone() else {
            return err(
                var_at,
                format!("expected the sum variable's name, found {}", self.found()),
            );
        };
        let reserved = ["x", "y", "z", "t", "u", "d", "pi", "sum"];
        if reserved.contains(&var.as_str()) || FUNCS.iter().any(|(n, _)| *n == var) {
            return err(var_at, format!("'{var}' is reserved and cannot name a sum variable"));
        }
        self.pos += 1;
        self.expect(',')?;
        self.enter()?;
        let lo_at = self.at();
        let lo = self.expr()?;
        self.check_index(lo, lo_at)?;
        self.expect(',')?;
        let hi_at = self.at();
        let hi = self.expr()?;
        self.check_index(hi, hi_at)?;
        self.expect(',')?;
        let id = self.vars;
        self.vars += 1;
        self.bound.push(var);
        self.bound_ids.push(id);
        let body = self.expr()?;
        self.bound.pop();
        self.bound_ids.pop();
        self.depth -= 1;
        self.expect(')')?;
        let _ = at;
        Ok(self.push(Node::Sum { var: id, lo, hi, body }))
    }
}

impl Formula {
    /// Parses and compiles `text` for `scope`.
    pub fn parse(text: &str, scope: Scope) -> Result<Formula, FormulaError> {
        let toks = lex(text)?;
        let mut p = Parser {
            toks,
            pos: 0,
            scope,
            nodes: Vec::new(),
            bound: Vec::new(),
            vars: 0,
            bound_ids: Vec::new(),
            partials: Vec::new(),
            patterns: Vec::new(),
            uses_u: false,
            uses_time: false,
            depth: 0,
            text,
        };
        if *p.peek() == Tok::End {
            return err(0, "the formula is empty");
        }
        let root = p.expr()?;
        if *p.peek() != Tok::End {
            return err(p.at(), format!("unexpected {} after a complete formula", p.found()));
        }
        let _ = p.text;
        let mut f = Formula {
            text: text.to_string(),
            nodes: p.nodes,
            root,
            partials: p.partials,
            patterns: p.patterns,
            partial_map: Default::default(),
            first_order: Vec::new(),
            diagonal: Vec::new(),
            lane_order: Vec::new(),
            coordinate_sum: Vec::new(),
            uses_u: p.uses_u,
            uses_time: p.uses_time,
            vars: p.vars,
            scope,
        };
        f.partial_map = f.partials.iter().enumerate().map(|(k, p)| (p.clone(), k)).collect();
        if !f.patterns.is_empty() {
            // every concrete partial the sums reach, in order of first use
            let mut vars = vec![0i64; f.vars];
            let mut found = Vec::new();
            let mut seen = std::collections::HashSet::new();
            f.collect_partials(f.root, &mut vars, &mut found, &mut seen)?;
            for idx in found {
                if !f.partial_map.contains_key(&idx) {
                    f.partial_map.insert(idx.clone(), f.partials.len());
                    f.partials.push(idx);
                }
            }
        }
        let din = scope.dim + usize::from(scope.time);
        let (mut first, mut diagonal) = (vec![u32::MAX; din], vec![u32::MAX; din]);
        for (k, idx) in f.partials.iter().enumerate() {
            match idx.as_slice() {
                [i] if *i < din => first[*i] = k as u32,
                [i, j] if i == j && *i < din => diagonal[*i] = k as u32,
                _ => {}
            }
        }
        (f.first_order, f.diagonal) = (first, diagonal);
        f.lane_order = (0..f.nodes.len())
            .map(|i| match f.nodes[i] {
                Node::Sum { body, .. } => {
                    let mut order = Vec::new();
                    if f.postorder_without_sums(body, &mut order) {
                        order
                    } else {
                        Vec::new()
                    }
                }
                _ => Vec::new(),
            })
            .collect();
        f.coordinate_sum = (0..f.nodes.len())
            .map(|i| match f.nodes[i] {
                Node::Sum { var, lo, hi, body } => {
                    f.reads_only(lo, None) && f.reads_only(hi, None) && f.reads_only(body, Some(var))
                }
                _ => false,
            })
            .collect();
        Ok(f)
    }

    /// Whether node `i`'s subtree reads nothing of the point but coordinate `x[var]` (none with
    /// `var = None`), and no variable but `var`: no time, quantity or sum.
    fn reads_only(&self, i: usize, var: Option<usize>) -> bool {
        match self.nodes[i] {
            Node::Const(_) | Node::Dim => true,
            Node::Var(v) => Some(v) == var,
            Node::Coord(e) => var.is_some() && matches!(self.nodes[e], Node::Var(v) if Some(v) == var),
            Node::Time | Node::Quantity(_) | Node::PartialVar(_) | Node::Sum { .. } => false,
            Node::Neg(a) | Node::Call(_, a) => self.reads_only(a, var),
            Node::Add(a, b) | Node::Sub(a, b) | Node::Mul(a, b) | Node::Div(a, b) | Node::Pow(a, b, _) => {
                self.reads_only(a, var) && self.reads_only(b, var)
            }
        }
    }

    /// Appends node `i`'s subtree children first; false if it holds a sum.
    fn postorder_without_sums(&self, i: usize, out: &mut Vec<usize>) -> bool {
        let ok = match self.nodes[i] {
            Node::Sum { .. } => return false,
            Node::Neg(a) | Node::Call(_, a) => self.postorder_without_sums(a, out),
            Node::Add(a, b) | Node::Sub(a, b) | Node::Mul(a, b) | Node::Div(a, b) | Node::Pow(a, b, _) => {
                self.postorder_without_sums(a, out) && self.postorder_without_sums(b, out)
            }
            _ => true,
        };
        out.push(i);
        ok
    }

    /// A sum without inner sums at order 0, [`LANES`] terms at a time: each body node's values for
    /// all of them in one pass (the same arithmetic per term as the node-by-node walk, summed in
    /// term order), and with `grad = Some((bar, g))` the reverse sweep of `bar·sum` likewise.
    fn lane_sum(&self, ws: &mut Workspace, i: usize, env: &dyn Env, grad: Option<(f64, &mut Grads<'_>)>) -> f64 {
        let Node::Sum { var, lo, hi, body } = self.nodes[i] else {
            unreachable!("a sum")
        };
        let (lo, hi) = (self.scalar(ws, lo).round() as i64, self.scalar(ws, hi).round() as i64);
        if hi.saturating_sub(lo) >= self.max_sum_terms() {
            ws.long_sum = Some(hi.saturating_sub(lo).saturating_add(1));
            return f64::NAN;
        }
        let order = &self.lane_order[i];
        let mut lanes = std::mem::take(&mut ws.lanes);
        if lanes.len() < self.nodes.len() {
            lanes.resize_with(self.nodes.len(), Lane::default);
        }
        let mut grad = grad;
        let mut total = 0.0;
        let mut start = lo;
        while start <= hi {
            let m = ((hi - start + 1) as usize).min(LANES);
            for &j in order {
                self.lane_forward(ws, &mut lanes, j, var, start, m, env);
            }
            // term by term, as the walk adds them
            total = lanes[body].value[..m].iter().fold(total, |acc, v| acc + v);
            if let Some((bar, g)) = grad.as_mut() {
                for &j in order {
                    let adj = &mut lanes[j].adjoint;
                    adj.clear();
                    adj.resize(m, 0.0);
                }
                lanes[body].adjoint.fill(*bar);
                for &j in order.iter().rev() {
                    self.lane_reverse(&mut lanes, j, m, g);
                }
            }
            start += m as i64;
        }
        ws.lanes = lanes;
        total
    }

    /// Values of body node `j` for terms `start..start + m` of sum variable `var`.
    #[allow(clippy::too_many_arguments)]
    fn lane_forward(
        &self,
        ws: &mut Workspace,
        lanes: &mut [Lane],
        j: usize,
        var: usize,
        start: i64,
        m: usize,
        env: &dyn Env,
    ) {
        let mut one = [0.0];
        let mut out = std::mem::take(&mut lanes[j].value);
        out.clear();
        out.resize(m, 0.0);
        let mut index = std::mem::take(&mut lanes[j].index);
        let child = |c: usize| &lanes[c].value[..m];
        let (mut s1, mut s2) = ([0.0], [0.0]);
        match self.nodes[j] {
            Node::Const(v) => out.fill(v),
            Node::Dim => out.fill(self.scope.dim as f64),
            Node::Var(v) if v == var => out
                .iter_mut()
                .enumerate()
                .for_each(|(t, o)| *o = (start + t as i64) as f64),
            Node::Var(v) => out.fill(ws.vars[v] as f64),
            Node::Time => {
                env.coord(self.scope.dim, &mut one);
                out.fill(one[0]);
            }
            Node::Quantity(k) => {
                env.quantity(k, &mut one);
                out.fill(one[0]);
            }
            Node::Coord(e)
                if matches!(self.nodes[e], Node::Var(v) if v == var)
                    && let Some(x) = env.point_x()
                    && start >= 0
                    && start as usize + m <= self.scope.dim.min(x.len()) =>
            {
                // x[var] over the run: one copy
                let s = start as usize;
                out.copy_from_slice(&x[s..s + m]);
                index.clear();
                index.extend(s..s + m);
            }
            Node::Coord(e) => {
                index.clear();
                for (t, o) in out.iter_mut().enumerate() {
                    let c = match self.nodes[e] {
                        Node::Var(v) if v == var => start + t as i64,
                        _ => {
                            ws.vars[var] = start + t as i64;
                            self.scalar(ws, e).round() as i64
                        }
                    };
                    if c < 0 || c as usize >= self.scope.dim {
                        ws.bad_index = Some(c);
                        *o = f64::NAN;
                        index.push(usize::MAX);
                    } else {
                        env.coord(c as usize, &mut one);
                        *o = one[0];
                        index.push(c as usize);
                    }
                }
            }
            Node::PartialVar(p) => {
                index.clear();
                // d[i] and d[i,i] of the sum's variable: by table, from the point's quantities
                let table = match self.patterns[p].as_slice() {
                    [IndexTerm::Var(v)] if *v == var => Some(&self.first_order),
                    [IndexTerm::Var(v), IndexTerm::Var(w)] if *v == var && *w == var => Some(&self.diagonal),
                    _ => None,
                };
                if let (Some(table), Some(q)) = (table, env.point_quantities()) {
                    for (t, o) in out.iter_mut().enumerate() {
                        let i = start + t as i64;
                        let k = if i >= 0 && (i as usize) < self.scope.dim {
                            table.get(i as usize).copied().unwrap_or(u32::MAX)
                        } else {
                            u32::MAX
                        };
                        if k == u32::MAX {
                            *o = f64::NAN;
                            index.push(usize::MAX);
                        } else {
                            let k = k as usize + 1;
                            *o = q.get(k).copied().unwrap_or(f64::NAN);
                            index.push(k);
                        }
                    }
                } else {
                    let mut key = std::mem::take(&mut ws.key);
                    for (t, o) in out.iter_mut().enumerate() {
                        ws.vars[var] = start + t as i64;
                        let k = self.resolve(p, &ws.vars, &mut key).and_then(|_| self.lookup(&key));
                        match k {
                            Some(k) => {
                                env.quantity(k + 1, &mut one);
                                *o = one[0];
                                index.push(k + 1);
                            }
                            None => {
                                *o = f64::NAN;
                                index.push(usize::MAX);
                            }
                        }
                    }
                    ws.key = key;
                }
            }
            Node::Neg(a) => out.iter_mut().zip(child(a)).for_each(|(o, v)| *o = -v),
            Node::Add(a, b) => (0..m).for_each(|t| out[t] = child(a)[t] + child(b)[t]),
            Node::Sub(a, b) => (0..m).for_each(|t| out[t] = child(a)[t] - child(b)[t]),
            Node::Mul(a, b) => (0..m).for_each(|t| out[t] = child(a)[t] * child(b)[t]),
            Node::Div(a, b) => (0..m).for_each(|t| out[t] = child(a)[t] / child(b)[t]),
            Node::Pow(a, _, Some(p)) => (0..m).for_each(|t| out[t] = pow0(child(a)[t], p)),
            Node::Pow(a, b, None) => (0..m).for_each(|t| {
                log(&child(a)[t..=t], &mut s1);
                mul(&child(b)[t..=t], &s1, &mut s2);
                exp(&s2, &mut out[t..=t]);
            }),
            Node::Call(f, a) => (0..m).for_each(|t| out[t] = call0(f, child(a)[t])),
            Node::Sum { .. } => unreachable!("no sum inside a lane sum"),
        }
        lanes[j].value = out;
        lanes[j].index = index;
    }

    /// Adds node `j`'s adjoints (terms `..m`) into its children's, or into `g` at the leaves.
    fn lane_reverse(&self, lanes: &mut [Lane], j: usize, m: usize, g: &mut Grads<'_>) {
        let adj = std::mem::take(&mut lanes[j].adjoint);
        // child c's adjoint += adj·f(t) with f reading the lanes' values
        fn add(lanes: &mut [Lane], c: usize, m: usize, adj: &[f64], f: impl Fn(&[Lane], usize) -> f64) {
            let mut a = std::mem::take(&mut lanes[c].adjoint);
            for t in 0..m {
                a[t] += adj[t] * f(lanes, t);
            }
            lanes[c].adjoint = a;
        }
        match self.nodes[j] {
            Node::Const(_) | Node::Dim | Node::Var(_) => {}
            Node::Time => {
                if let Some(d) = g.dx.get_mut(self.scope.dim) {
                    *d += adj.iter().sum::<f64>();
                }
            }
            Node::Quantity(k) => {
                if let Some(d) = g.dq.get_mut(k) {
                    *d += adj.iter().sum::<f64>();
                }
            }
            Node::Coord(_) | Node::PartialVar(_) => {
                let into = if matches!(self.nodes[j], Node::Coord(_)) {
                    &mut *g.dx
                } else {
                    &mut *g.dq
                };
                for (t, &k) in lanes[j].index[..m].iter().enumerate() {
                    if let Some(d) = into.get_mut(k) {
                        *d += adj[t];
                    }
                }
            }
            Node::Neg(a) => add(lanes, a, m, &adj, |_, _| -1.0),
            Node::Add(a, b) => {
                add(lanes, a, m, &adj, |_, _| 1.0);
                add(lanes, b, m, &adj, |_, _| 1.0);
            }
            Node::Sub(a, b) => {
                add(lanes, a, m, &adj, |_, _| 1.0);
                add(lanes, b, m, &adj, |_, _| -1.0);
            }
            Node::Mul(a, b) => {
                add(lanes, a, m, &adj, |l, t| l[b].value[t]);
                add(lanes, b, m, &adj, |l, t| l[a].value[t]);
            }
            Node::Div(a, b) => {
                add(lanes, a, m, &adj, |l, t| 1.0 / l[b].value[t]);
                add(lanes, b, m, &adj, |l, t| -l[j].value[t] / l[b].value[t]);
            }
            Node::Pow(a, b, constant) => {
                add(lanes, a, m, &adj, |l, t| {
                    pow_derivative(l[a].value[t], l[b].value[t], l[j].value[t], constant)
                });
                if constant.is_none() {
                    add(lanes, b, m, &adj, |l, t| l[j].value[t] * l[a].value[t].ln());
                }
            }
            Node::Call(f, a) => add(lanes, a, m, &adj, |l, t| {
                call_derivative(f, l[a].value[t], l[j].value[t])
            }),
            Node::Sum { .. } => unreachable!("no sum inside a lane sum"),
        }
        lanes[j].adjoint = adj;
    }

    /// The position in [`Formula::partials`] of the partial with sorted index `key`.
    fn lookup(&self, key: &[usize]) -> Option<usize> {
        let table = |t: &[u32], i: usize| t.get(i).copied().filter(|&k| k != u32::MAX).map(|k| k as usize);
        match key {
            [i] => table(&self.first_order, *i),
            [i, j] if i == j => table(&self.diagonal, *i),
            _ => self.partial_map.get(key).copied(),
        }
    }

    /// Whether the formula is affine in its spatial diagonal second-order partials `d[i,i]`
    /// (`i < d`) jointly: each appears only added, or multiplied by factors that read none of them
    /// (`Σ_i a(x_i)·d[i,i]`). Then replacing them by unbiased estimates keeps the value unbiased.
    pub fn affine_in_diagonals(&self) -> bool {
        self.diagonal_degree(self.root) <= 1
    }

    /// Whether sorted partial index `idx` is a spatial diagonal second-order partial `d[i,i]`.
    pub fn is_spatial_diagonal(&self, idx: &[usize]) -> bool {
        matches!(idx, [i, j] if i == j && *i < self.scope.dim)
    }

    /// Degree of node `i` in the spatial diagonal partials (2: not affine).
    fn diagonal_degree(&self, i: usize) -> u8 {
        let deg = |j| self.diagonal_degree(j);
        match self.nodes[i] {
            Node::Quantity(k) => u8::from(k >= 1 && self.is_spatial_diagonal(&self.partials[k - 1])),
            Node::PartialVar(p) => u8::from(match self.patterns[p].as_slice() {
                [a, b] if a == b => match a {
                    IndexTerm::Coord(c) => *c < self.scope.dim,
                    IndexTerm::Var(_) => true,
                },
                _ => false,
            }),
            Node::Neg(a) => deg(a),
            Node::Add(a, b) | Node::Sub(a, b) => deg(a).max(deg(b)),
            Node::Mul(a, b) => (deg(a) + deg(b)).min(2),
            Node::Div(a, b) => {
                if deg(b) > 0 {
                    2
                } else {
                    deg(a)
                }
            }
            Node::Pow(a, b, _) => {
                if deg(a) + deg(b) > 0 {
                    2
                } else {
                    0
                }
            }
            Node::Call(_, a) => {
                if deg(a) > 0 {
                    2
                } else {
                    0
                }
            }
            Node::Sum { body, .. } => deg(body),
            Node::Const(_) | Node::Coord(_) | Node::Time | Node::Var(_) | Node::Dim => 0,
        }
    }

    /// The sorted index of pattern `p` under the current variable values (`None`: out of range).
    fn resolve(&self, p: usize, vars: &[i64], key: &mut Vec<usize>) -> Option<()> {
        key.clear();
        for t in &self.patterns[p] {
            key.push(match *t {
                IndexTerm::Coord(c) => c,
                IndexTerm::Var(v) => {
                    let i = vars[v];
                    if i < 0 || i as usize >= self.scope.dim {
                        return None;
                    }
                    i as usize
                }
            });
        }
        key.sort_unstable();
        Some(())
    }

    /// Walks the tree with the sums' loops to find every partial a pattern reaches.
    fn collect_partials(
        &self,
        i: usize,
        vars: &mut [i64],
        found: &mut Vec<Vec<usize>>,
        seen: &mut std::collections::HashSet<Vec<usize>>,
    ) -> Result<(), FormulaError> {
        match self.nodes[i] {
            Node::PartialVar(p) => {
                let mut key = Vec::new();
                if self.resolve(p, vars, &mut key).is_none() {
                    return err(
                        0,
                        format!(
                            "a partial's index leaves 0..{} (d = {})",
                            self.scope.dim, self.scope.dim
                        ),
                    );
                }
                if seen.insert(key.clone()) {
                    found.push(key);
                }
            }
            Node::Sum { var, lo, hi, body } => {
                let (lo, hi) = (
                    self.scalar_vars(vars, lo).round() as i64,
                    self.scalar_vars(vars, hi).round() as i64,
                );
                for v in lo..=hi {
                    vars[var] = v;
                    self.collect_partials(body, vars, found, seen)?;
                }
            }
            Node::Neg(a) | Node::Call(_, a) => self.collect_partials(a, vars, found, seen)?,
            Node::Add(a, b) | Node::Sub(a, b) | Node::Mul(a, b) | Node::Div(a, b) | Node::Pow(a, b, _) => {
                self.collect_partials(a, vars, found, seen)?;
                self.collect_partials(b, vars, found, seen)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The formula's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The distinct partials `d[...]` it reads (sorted coordinate lists); quantity `k + 1` of
    /// [`Formula::eval`] is partial `k`.
    pub fn partials(&self) -> &[Vec<usize>] {
        &self.partials
    }

    /// Whether it reads `u` or any partial.
    pub fn uses_solution(&self) -> bool {
        self.uses_u || !self.partials.is_empty()
    }

    /// Whether it reads `t`.
    pub fn uses_time(&self) -> bool {
        self.uses_time
    }

    /// A workspace sized for this formula at Taylor order `order`.
    pub fn workspace(&self, order: usize) -> Workspace {
        Workspace {
            order,
            series: vec![0.0; self.nodes.len() * 3 * (order + 1)],
            vars: vec![0; self.vars],
            bad_index: None,
            long_sum: None,
            key: Vec::new(),
            lanes: Vec::new(),
            point_sums: Vec::new(),
            unit_series: Vec::new(),
        }
    }

    /// The value at `(x, t)` with quantities `q` (`q[0] = u`, `q[k + 1]` = partial `k`).
    pub fn eval(&self, ws: &mut Workspace, x: &[f64], t: f64, q: &[f64]) -> f64 {
        self.prepare(ws, 0);
        let env = PointEnv { x, t, q, tangent: None };
        self.node(ws, self.root, &env);
        ws.series[self.root * 3 * (ws.order + 1)]
    }

    /// The value and its derivatives `∂/∂q_k` (into `dq`, one per quantity `1 + partials`), by
    /// one reverse sweep (sums are replayed, so the cost is about twice an evaluation).
    pub fn eval_with_gradient(&self, ws: &mut Workspace, x: &[f64], t: f64, q: &[f64], dq: &mut [f64]) -> f64 {
        let value = self.eval(ws, x, t, q);
        dq.fill(0.0);
        if self.uses_solution() {
            let env = PointEnv { x, t, q, tangent: None };
            self.reverse(ws, self.root, 1.0, &env, &mut Grads { dq, dx: &mut [] });
        }
        value
    }

    /// The value and its gradient in the input `(x, t)` (into `dx`: `∂/∂x_i` for `i < d`, then
    /// `∂/∂t` where `dx` is longer), with quantities `q` held fixed, by one reverse sweep.
    pub fn eval_with_input_gradient(&self, ws: &mut Workspace, x: &[f64], t: f64, q: &[f64], dx: &mut [f64]) -> f64 {
        let value = self.eval(ws, x, t, q);
        dx.fill(0.0);
        let env = PointEnv { x, t, q, tangent: None };
        self.reverse(ws, self.root, 1.0, &env, &mut Grads { dq: &mut [], dx });
        value
    }

    /// Adds `bar·∂(node i)/∂q_k` into `g.dq` and `bar·∂(node i)/∂x_c` into `g.dx` (entries
    /// beyond either's length are skipped; order-0 values of node `i`'s subtree are current).
    fn reverse(&self, ws: &mut Workspace, i: usize, bar: f64, env: &dyn Env, g: &mut Grads<'_>) {
        let v = |ws: &Workspace, j: usize| ws.series[j * 3];
        match self.nodes[i] {
            Node::Const(_) | Node::Dim | Node::Var(_) => {}
            Node::Coord(e) => {
                let c = self.scalar(ws, e).round() as i64;
                if c >= 0
                    && let Some(d) = g.dx.get_mut(c as usize)
                {
                    *d += bar;
                }
            }
            Node::Time => {
                if let Some(d) = g.dx.get_mut(self.scope.dim) {
                    *d += bar;
                }
            }
            Node::Quantity(k) => {
                if let Some(d) = g.dq.get_mut(k) {
                    *d += bar;
                }
            }
            Node::PartialVar(p) => {
                let mut key = std::mem::take(&mut ws.key);
                if self.resolve(p, &ws.vars, &mut key).is_some()
                    && let Some(k) = self.lookup(&key)
                    && let Some(d) = g.dq.get_mut(k + 1)
                {
                    *d += bar;
                }
                ws.key = key;
            }
            Node::Neg(a) => self.reverse(ws, a, -bar, env, g),
            Node::Add(a, b) => {
                self.reverse(ws, a, bar, env, g);
                self.reverse(ws, b, bar, env, g);
            }
            Node::Sub(a, b) => {
                self.reverse(ws, a, bar, env, g);
                self.reverse(ws, b, -bar, env, g);
            }
            Node::Mul(a, b) => {
                let (va, vb) = (v(ws, a), v(ws, b));
                self.reverse(ws, a, bar * vb, env, g);
                self.reverse(ws, b, bar * va, env, g);
            }
            Node::Div(a, b) => {
                let (vb, y) = (v(ws, b), v(ws, i));
                self.reverse(ws, a, bar / vb, env, g);
                self.reverse(ws, b, -bar * y / vb, env, g);
            }
            Node::Pow(a, b, constant) => {
                let (va, vb, y) = (v(ws, a), v(ws, b), v(ws, i));
                self.reverse(ws, a, bar * pow_derivative(va, vb, y, constant), env, g);
                if constant.is_none() {
                    self.reverse(ws, b, bar * y * va.ln(), env, g);
                }
            }
            Node::Call(f, a) => {
                let (x, y) = (v(ws, a), v(ws, i));
                let d = call_derivative(f, x, y);
                self.reverse(ws, a, bar * d, env, g);
            }
            Node::Sum { .. } if !self.lane_order[i].is_empty() => {
                self.lane_sum(ws, i, env, Some((bar, g)));
            }
            Node::Sum { var, lo, hi, body } => {
                let (lo, hi) = (self.scalar(ws, lo).round() as i64, self.scalar(ws, hi).round() as i64);
                if hi.saturating_sub(lo) >= self.max_sum_terms() {
                    return;
                }
                for k in lo..=hi {
                    ws.vars[var] = k;
                    self.node(ws, body, env);
                    self.reverse(ws, body, bar, env, g);
                }
            }
        }
    }

    /// The normalised Taylor coefficients `c_0..c_K` of the formula (which must not read `u`)
    /// along an input curve: `coord(i, out)` writes the normalised coefficients of input
    /// coordinate `i` (`i = d` is the time) into `out` (length `K + 1`).
    pub fn series(&self, ws: &mut Workspace, coord: &dyn Fn(usize, &mut [f64]), out: &mut [f64]) {
        let order = ws.order;
        self.prepare(ws, order);
        let env = CurveEnv { coord };
        self.node(ws, self.root, &env);
        let s = self.root * 3 * (ws.order + 1);
        out[..=order].copy_from_slice(&ws.series[s..s + order + 1]);
    }

    /// Prepares [`Formula::series_through_point`] at the point `x` (`x[d]` the time where the
    /// formula reads it): every sum whose terms read only their own coordinate is evaluated
    /// here, once for all the curves through `x`.
    pub fn prepare_point(&self, ws: &mut Workspace, x: &[f64]) {
        let order = ws.order;
        self.prepare(ws, 0);
        let t = x.get(self.scope.dim).copied().unwrap_or(f64::NAN);
        let env = PointEnv {
            x,
            t,
            q: &[],
            tangent: None,
        };
        ws.point_sums.clear();
        ws.point_sums.resize(self.nodes.len(), f64::NAN);
        ws.unit_series.resize_with(self.nodes.len(), Vec::new);
        for j in (0..self.nodes.len()).filter(|&j| self.coordinate_sum[j]) {
            self.node(ws, j, &env);
            ws.point_sums[j] = ws.series[j * 3];
            ws.unit_series[j].clear();
        }
        ws.order = order;
    }

    /// [`Formula::series`] along a curve through the point of the last
    /// [`Formula::prepare_point`] (the curve's coordinates at `s = 0` must be that point). A sum
    /// whose terms read only their own coordinate costs, along a [`Curve::Touching`], its terms
    /// in the touched coordinates, not all `d`; along a [`Curve::Dense`], `O(K²)` arithmetic a
    /// term (each term's Taylor series in its coordinate, computed once per point, composed with
    /// the coordinate's curve) instead of an evaluation. Equal to [`Formula::series`] up to
    /// rounding.
    pub fn series_through_point(&self, ws: &mut Workspace, curve: Curve<'_>, out: &mut [f64]) {
        let order = ws.order;
        self.prepare(ws, order);
        let env = PointCurveEnv {
            curve,
            width: order + 1,
        };
        self.node(ws, self.root, &env);
        let s = self.root * 3 * (ws.order + 1);
        out[..=order].copy_from_slice(&ws.series[s..s + order + 1]);
    }

    /// Adds `Σ_c (term_c(curve_c) − term_c(x_c))` over `terms` of coordinate sum `i` along the
    /// dense curve with coefficient slots `slots` to the sum's value buffer: each term's series in its own coordinate (a table
    /// made once per point) composed with the coordinate's curve.
    fn compose_terms(
        &self,
        ws: &mut Workspace,
        i: usize,
        env: &dyn Env,
        slots: &[Vec<f64>],
        terms: std::ops::Range<usize>,
    ) {
        let Node::Sum { var, body, .. } = self.nodes[i] else {
            unreachable!("a sum")
        };
        let n = ws.order + 1;
        let mut table = std::mem::take(&mut ws.unit_series[i]);
        if table.is_empty() {
            let unit = UnitEnv { inner: env };
            for c in terms.clone() {
                ws.vars[var] = c as i64;
                self.node(ws, body, &unit);
                table.extend_from_slice(&ws.series[body * 3 * n..body * 3 * n + n]);
            }
        }
        // added to the sum's value buffer (its coefficients above 0 start at zero)
        let start = i * 3 * n;
        let acc = &mut ws.series[start..start + n];
        let slot = |k: usize| &slots[k - 1][terms.clone()];
        match n {
            1 => {}
            2 => acc[1] = table.chunks_exact(2).zip(slot(1)).map(|(a, v)| a[1] * v).sum(),
            3 => {
                for ((a, v1), v2) in table.chunks_exact(3).zip(slot(1)).zip(slot(2)) {
                    acc[1] += a[1] * v1;
                    acc[2] += a[1] * v2 + a[2] * v1 * v1;
                }
            }
            _ => {
                let (mut delta, mut power, mut next) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
                for (t, a) in table.chunks_exact(n).enumerate() {
                    // Σ_m a_m δ^m, δ = the coordinate's curve less its value
                    for k in 1..n {
                        delta[k] = slots[k - 1][terms.start + t];
                    }
                    power.copy_from_slice(&delta);
                    for m in 1..n {
                        for k in m..n {
                            acc[k] += a[m] * power[k];
                        }
                        if m + 1 < n {
                            mul(&power, &delta, &mut next);
                            std::mem::swap(&mut power, &mut next);
                        }
                    }
                }
            }
        }
        ws.unit_series[i] = table;
    }

    /// Coordinate sum `i` along a curve through the prepared point into its value buffer: the
    /// point's sum plus, for every touched term, its series less its value.
    fn coordinate_sum_series(&self, ws: &mut Workspace, i: usize, env: &dyn Env, curve: Curve<'_>) {
        let Node::Sum { var, lo, hi, body } = self.nodes[i] else {
            unreachable!("a sum")
        };
        let n = ws.order + 1;
        let start = i * 3 * n;
        let (lo, hi) = (self.scalar(ws, lo).round() as i64, self.scalar(ws, hi).round() as i64);
        let (lo, hi) = (lo.max(0), hi.min(self.scope.dim as i64 - 1));
        ws.series[start..start + n].fill(0.0);
        ws.series[start] = ws.point_sums[i];
        let touched = match curve {
            Curve::Touching { touched, .. } => touched,
            Curve::Dense { slots, .. } => {
                if lo <= hi {
                    self.compose_terms(ws, i, env, slots, lo as usize..hi as usize + 1);
                }
                return;
            }
        };
        for &c in touched.iter().filter(|&&c| (lo..=hi).contains(&(c as i64))) {
            ws.vars[var] = c as i64;
            self.node(ws, body, env);
            let b = body * 3 * n;
            for k in 1..n {
                ws.series[start + k] += ws.series[b + k];
            }
        }
    }

    fn prepare(&self, ws: &mut Workspace, order: usize) {
        ws.order = order;
        let need = self.nodes.len() * 3 * (order + 1);
        if ws.series.len() < need {
            ws.series.resize(need, 0.0);
        }
        ws.vars.resize(self.vars, 0);
    }

    /// Most terms one `sum` may run over: `max(4d, 10 000)` (sums range over coordinates; a
    /// runaway bound must not hang an evaluation).
    fn max_sum_terms(&self) -> i64 {
        (4 * self.scope.dim as i64).max(10_000)
    }

    /// Checks that every coordinate index the formula computes is in range (one evaluation at a
    /// sample point; indices depend on `d` and sum variables only).
    pub fn validate(&self) -> Result<(), FormulaError> {
        let mut ws = self.workspace(0);
        let x = vec![0.25; self.scope.dim];
        let q = vec![0.5; 1 + self.partials.len()];
        self.eval(&mut ws, &x, 0.5, &q);
        if let Some(i) = ws.bad_index {
            return err(
                0,
                format!("a coordinate index evaluates to {i}, outside 0..{}", self.scope.dim),
            );
        }
        Ok(())
    }

    /// An integer index expression's value.
    fn scalar(&self, ws: &Workspace, i: usize) -> f64 {
        self.scalar_vars(&ws.vars, i)
    }

    fn scalar_vars(&self, vars: &[i64], i: usize) -> f64 {
        let s = |j| self.scalar_vars(vars, j);
        match self.nodes[i] {
            Node::Const(v) => v,
            Node::Dim => self.scope.dim as f64,
            Node::Var(v) => vars[v] as f64,
            Node::Neg(a) => -s(a),
            Node::Add(a, b) => s(a) + s(b),
            Node::Sub(a, b) => s(a) - s(b),
            Node::Mul(a, b) => s(a) * s(b),
            Node::Div(a, b) => s(a) / s(b),
            _ => f64::NAN,
        }
    }

    /// Evaluates node `i` (children first) into its value buffer.
    fn node(&self, ws: &mut Workspace, i: usize, env: &dyn Env) {
        let n = ws.order + 1;
        let start = i * 3 * n;
        // children have smaller indices: their buffers lie before this node's
        match self.nodes[i] {
            Node::Neg(a) | Node::Call(_, a) => self.node(ws, a, env),
            Node::Add(a, b) | Node::Sub(a, b) | Node::Mul(a, b) | Node::Div(a, b) | Node::Pow(a, b, _) => {
                self.node(ws, a, env);
                self.node(ws, b, env);
            }
            Node::Sum { .. } if n == 1 && !self.lane_order[i].is_empty() => {
                ws.series[start] = self.lane_sum(ws, i, env, None);
                return;
            }
            Node::Sum { .. }
                if self.coordinate_sum[i]
                    && let Some(curve) = env.through_point()
                    && ws.point_sums.len() == self.nodes.len() =>
            {
                self.coordinate_sum_series(ws, i, env, curve);
                return;
            }
            Node::Sum { var, lo, hi, body } => {
                let (lo, hi) = (self.scalar(ws, lo).round() as i64, self.scalar(ws, hi).round() as i64);
                if hi.saturating_sub(lo) >= self.max_sum_terms() {
                    ws.long_sum = Some(hi.saturating_sub(lo).saturating_add(1));
                    ws.series[start..start + n].fill(f64::NAN);
                    return;
                }
                ws.series[start..start + n].fill(0.0);
                for v in lo..=hi {
                    ws.vars[var] = v;
                    self.node(ws, body, env);
                    let b = body * 3 * n;
                    for k in 0..n {
                        ws.series[start + k] += ws.series[b + k];
                    }
                }
                return;
            }
            Node::PartialVar(p) => {
                let mut key = std::mem::take(&mut ws.key);
                let k = self.resolve(p, &ws.vars, &mut key).and_then(|_| self.lookup(&key));
                ws.key = key;
                let out = &mut ws.series[start..start + n];
                match k {
                    Some(k) => env.quantity(k + 1, out),
                    None => out.fill(f64::NAN),
                }
                return;
            }
            Node::Coord(e) => {
                let c = self.scalar(ws, e).round() as i64;
                let out = &mut ws.series[start..start + n];
                if c < 0 || c as usize >= self.scope.dim {
                    ws.bad_index = Some(c);
                    out.fill(f64::NAN);
                } else {
                    env.coord(c as usize, out);
                }
                return;
            }
            _ => {}
        }
        let (done, rest) = ws.series.split_at_mut(start);
        let (out, rest) = rest.split_at_mut(n);
        let (s1, rest) = rest.split_at_mut(n);
        let s2 = &mut rest[..n];
        let child = |j: usize| &done[j * 3 * n..j * 3 * n + n];
        match self.nodes[i] {
            Node::Const(v) => constant(out, v),
            Node::Dim => constant(out, self.scope.dim as f64),
            Node::Var(v) => constant(out, ws.vars[v] as f64),
            Node::Time => env.coord(self.scope.dim, out),
            Node::Quantity(k) => env.quantity(k, out),
            Node::PartialVar(_) => unreachable!("handled above"),
            Node::Neg(a) => out.iter_mut().zip(child(a)).for_each(|(o, v)| *o = -v),
            Node::Add(a, b) => (0..n).for_each(|k| out[k] = child(a)[k] + child(b)[k]),
            Node::Sub(a, b) => (0..n).for_each(|k| out[k] = child(a)[k] - child(b)[k]),
            Node::Mul(a, b) => mul(child(a), child(b), out),
            Node::Div(a, b) => div(child(a), child(b), out),
            Node::Pow(a, _, Some(p)) => pow_const(child(a), p, out, s1, s2),
            Node::Pow(a, b, None) => {
                // a^b = exp(b·log a)
                log(child(a), s1);
                mul(child(b), s1, s2);
                exp(s2, out);
            }
            Node::Call(f, a) => call(f, child(a), out, s1, s2),
            Node::Coord(_) | Node::Sum { .. } => unreachable!("handled above"),
        }
    }
}

/// Reusable buffers for evaluating one formula: a value and two scratch series per node.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    order: usize,
    series: Vec<f64>,
    vars: Vec<i64>,
    bad_index: Option<i64>,
    /// A sum longer than the limit was met (its length).
    long_sum: Option<i64>,
    /// Scratch for resolving a partial's index.
    key: Vec<usize>,
    /// Per node: values and adjoints over a run of a sum's terms.
    lanes: Vec<Lane>,
    /// Per node: a coordinate sum's value at the point of [`Formula::prepare_point`] (NaN for
    /// other nodes).
    point_sums: Vec<f64>,
    /// Per node: a coordinate sum's terms' Taylor series in their own coordinate at that point,
    /// `[terms × (order + 1)]` (empty until a dense curve needs them).
    unit_series: Vec<Vec<f64>>,
}

impl Workspace {
    /// The Taylor order it was last used at.
    pub fn order(&self) -> usize {
        self.order
    }
}

/// Terms of a sum evaluated together ([`Formula::lane_sum`]).
const LANES: usize = 512;

/// One node's values, adjoints and resolved coordinate or quantity indices over a run of a sum's
/// terms.
#[derive(Clone, Debug, Default)]
struct Lane {
    value: Vec<f64>,
    adjoint: Vec<f64>,
    index: Vec<usize>,
}

/// `f(x)`: the order-0 value of [`call`] (the same operations).
fn call0(f: Func, x: f64) -> f64 {
    match f {
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tan => x.tan(),
        Func::Exp => x.exp(),
        Func::Log => x.ln(),
        Func::Tanh => x.tanh(),
        Func::Sqrt => x.sqrt(),
        Func::Sinh => x.sinh(),
        Func::Cosh => x.cosh(),
        Func::Sech => 1.0 / x.cosh(),
        Func::Atan => x.atan(),
        Func::Abs => {
            if x < 0.0 {
                -x
            } else {
                x
            }
        }
    }
}

/// `a^p` for a constant `p`: the order-0 value of [`pow_const`] (repeated products for small
/// integers; a fourth root raised to an integer for quarter powers of `a ≥ 0`, e.g. `^1.75`,
/// within a few ulp and several times faster than `powf`).
fn pow0(a: f64, p: f64) -> f64 {
    if p.fract() == 0.0 && p.abs() <= 64.0 {
        let mut y = 1.0;
        for _ in 0..p.abs() as usize {
            y *= a;
        }
        return if p < 0.0 { 1.0 / y } else { y };
    }
    let q = 4.0 * p;
    if q.fract() == 0.0 && q.abs() <= 64.0 && a >= 0.0 {
        // repeated products inline (`powi` is a library call here)
        let r = a.sqrt().sqrt();
        let mut y = 1.0;
        for _ in 0..q.abs() as usize {
            y *= r;
        }
        return if q < 0.0 { 1.0 / y } else { y };
    }
    a.powf(p)
}

/// `∂(a^b)/∂a` at `a = va`, `b = vb` with `y = a^b`.
fn pow_derivative(va: f64, vb: f64, y: f64, constant: Option<f64>) -> f64 {
    match constant {
        Some(p) if p.fract() == 0.0 && p.abs() <= 64.0 => p * va.powi(p as i32 - 1),
        // a^(b−1)·b = b·y/a without a second power where a ≠ 0
        _ if va != 0.0 && y.is_finite() => vb * y / va,
        _ => vb * va.powf(vb - 1.0),
    }
}

/// `f'(x)` with `y = f(x)`.
fn call_derivative(f: Func, x: f64, y: f64) -> f64 {
    match f {
        Func::Sin => x.cos(),
        Func::Cos => -x.sin(),
        Func::Tan => 1.0 + y * y,
        Func::Exp => y,
        Func::Log => 1.0 / x,
        Func::Tanh => 1.0 - y * y,
        Func::Sqrt => 0.5 / y,
        Func::Sinh => x.cosh(),
        Func::Cosh => x.sinh(),
        Func::Sech => -y * x.tanh(),
        Func::Atan => 1.0 / (1.0 + x * x),
        Func::Abs => {
            if x < 0.0 {
                -1.0
            } else {
                1.0
            }
        }
    }
}

/// Where a reverse sweep accumulates: derivatives in the quantities and in the input.
struct Grads<'a> {
    dq: &'a mut [f64],
    dx: &'a mut [f64],
}

/// Where leaves get their series from.
trait Env {
    /// Input coordinate `i` (`i = d`: the time).
    fn coord(&self, i: usize, out: &mut [f64]);
    /// Quantity `k` (0: `u`).
    fn quantity(&self, k: usize, out: &mut [f64]);
    /// All quantities as values at a point (order 0), where they are that.
    fn point_quantities(&self) -> Option<&[f64]> {
        None
    }
    /// The curve, where it passes through the prepared point ([`Formula::prepare_point`]).
    fn through_point(&self) -> Option<Curve<'_>> {
        None
    }
    /// The spatial point, where the curve is a point (order 0).
    fn point_x(&self) -> Option<&[f64]> {
        None
    }
}

struct PointEnv<'a> {
    x: &'a [f64],
    t: f64,
    q: &'a [f64],
    /// The quantity carrying a unit first-order tangent (gradient evaluation).
    tangent: Option<usize>,
}

impl Env for PointEnv<'_> {
    fn coord(&self, i: usize, out: &mut [f64]) {
        constant(out, if i < self.x.len() { self.x[i] } else { self.t });
    }
    fn point_quantities(&self) -> Option<&[f64]> {
        self.tangent.is_none().then_some(self.q)
    }
    fn point_x(&self) -> Option<&[f64]> {
        Some(self.x)
    }
    fn quantity(&self, k: usize, out: &mut [f64]) {
        constant(out, self.q.get(k).copied().unwrap_or(f64::NAN));
        if out.len() > 1 && self.tangent == Some(k) {
            out[1] = 1.0;
        }
    }
}

struct CurveEnv<'a> {
    coord: &'a dyn Fn(usize, &mut [f64]),
}

impl Env for CurveEnv<'_> {
    fn coord(&self, i: usize, out: &mut [f64]) {
        (self.coord)(i, out);
    }
    fn quantity(&self, _k: usize, out: &mut [f64]) {
        out.fill(f64::NAN);
    }
}

/// An input curve through a point, for [`Formula::series_through_point`].
#[derive(Clone, Copy)]
pub enum Curve<'a> {
    /// `coord(i, out)` writes coordinate `i`'s normalised coefficients (`i = d`: the time); only
    /// the coordinates in `touched` (sorted, distinct) move.
    Touching {
        /// Coefficients of one coordinate.
        coord: &'a dyn Fn(usize, &mut [f64]),
        /// The coordinates that move.
        touched: &'a [usize],
    },
    /// Every coordinate moves: `x` the point, `slots[k − 1]` the normalised coefficients of
    /// order `k` of every coordinate (`K` slots of `din` numbers).
    Dense {
        /// The point.
        x: &'a [f64],
        /// Per order `k = 1..=K`, every coordinate's coefficient.
        slots: &'a [Vec<f64>],
    },
}

struct PointCurveEnv<'a> {
    curve: Curve<'a>,
    width: usize,
}

impl Env for PointCurveEnv<'_> {
    fn coord(&self, i: usize, out: &mut [f64]) {
        match self.curve {
            Curve::Touching { coord, .. } => coord(i, out),
            Curve::Dense { x, slots } => {
                out[0] = x[i];
                for (o, slot) in out[1..self.width].iter_mut().zip(slots) {
                    *o = slot[i];
                }
            }
        }
    }
    fn quantity(&self, _k: usize, out: &mut [f64]) {
        out.fill(f64::NAN);
    }
    fn through_point(&self) -> Option<Curve<'_>> {
        Some(self.curve)
    }
}

/// Every coordinate moving with unit speed from the point of `inner`'s curve: a term reading
/// only its own coordinate gets its Taylor series in that coordinate.
struct UnitEnv<'a> {
    inner: &'a dyn Env,
}

impl Env for UnitEnv<'_> {
    fn coord(&self, i: usize, out: &mut [f64]) {
        self.inner.coord(i, out);
        out[1..].fill(0.0);
        if out.len() > 1 {
            out[1] = 1.0;
        }
    }
    fn quantity(&self, _k: usize, out: &mut [f64]) {
        out.fill(f64::NAN);
    }
}

fn constant(out: &mut [f64], v: f64) {
    out.fill(0.0);
    out[0] = v;
}

/// `c = a·b` (Cauchy product).
fn mul(a: &[f64], b: &[f64], c: &mut [f64]) {
    for k in 0..c.len() {
        c[k] = (0..=k).map(|j| a[j] * b[k - j]).sum();
    }
}

/// `q = a / b`.
fn div(a: &[f64], b: &[f64], q: &mut [f64]) {
    for k in 0..q.len() {
        let s: f64 = (1..=k).map(|j| b[j] * q[k - j]).sum();
        q[k] = (a[k] - s) / b[0];
    }
}

/// `e = exp(a)`.
fn exp(a: &[f64], e: &mut [f64]) {
    e[0] = a[0].exp();
    for k in 1..e.len() {
        e[k] = (1..=k).map(|j| j as f64 * a[j] * e[k - j]).sum::<f64>() / k as f64;
    }
}

/// `l = log(a)`.
fn log(a: &[f64], l: &mut [f64]) {
    l[0] = a[0].ln();
    for k in 1..l.len() {
        let s: f64 = (1..k).map(|j| j as f64 * l[j] * a[k - j]).sum();
        l[k] = (a[k] - s / k as f64) / a[0];
    }
}

/// `y = f(a)` where `y' = a'·w` and `w = w(y)` (or of `a`) is produced order by order:
/// `y_k = (1/k) Σ_j j a_j w_{k−j}`; `next_w(y, w, m)` writes `w_m` from `y_0..y_m`.
fn ode(a: &[f64], y: &mut [f64], w: &mut [f64], y0: f64, next_w: impl Fn(&[f64], &mut [f64], usize)) {
    y[0] = y0;
    next_w(y, w, 0);
    for k in 1..y.len() {
        y[k] = (1..=k).map(|j| j as f64 * a[j] * w[k - j]).sum::<f64>() / k as f64;
        next_w(y, w, k);
    }
}

/// `s = sin a`, `c = cos a` (or `sinh`, `cosh` with `hyperbolic`).
fn sin_cos(a: &[f64], s: &mut [f64], c: &mut [f64], hyperbolic: bool) {
    if hyperbolic {
        (s[0], c[0]) = (a[0].sinh(), a[0].cosh());
    } else {
        (s[0], c[0]) = (a[0].sin(), a[0].cos());
    }
    let sign = if hyperbolic { 1.0 } else { -1.0 };
    for k in 1..s.len() {
        let (mut ss, mut cc) = (0.0, 0.0);
        for j in 1..=k {
            ss += j as f64 * a[j] * c[k - j];
            cc += j as f64 * a[j] * s[k - j];
        }
        s[k] = ss / k as f64;
        c[k] = sign * cc / k as f64;
    }
}

/// `r = 1 / b`.
fn recip(b: &[f64], r: &mut [f64]) {
    for k in 0..r.len() {
        let s: f64 = (1..=k).map(|j| b[j] * r[k - j]).sum();
        r[k] = (if k == 0 { 1.0 } else { 0.0 } - s) / b[0];
    }
}

/// `y = a^p` for a constant `p`: repeated products for small integers (any `a₀`), the power
/// recurrence `y_k = Σ_j (p·j − (k − j)) a_j y_{k−j} / (k·a₀)` otherwise.
fn pow_const(a: &[f64], p: f64, y: &mut [f64], s1: &mut [f64], s2: &mut [f64]) {
    if p.fract() == 0.0 && p.abs() <= 64.0 {
        let m = p.abs() as usize;
        constant(s1, 1.0);
        for _ in 0..m {
            mul(s1, a, s2);
            s1.copy_from_slice(s2);
        }
        if p < 0.0 {
            recip(s1, y);
        } else {
            y.copy_from_slice(s1);
        }
        return;
    }
    y[0] = pow0(a[0], p);
    for k in 1..y.len() {
        let s: f64 = (1..=k).map(|j| (p * j as f64 - (k - j) as f64) * a[j] * y[k - j]).sum();
        y[k] = s / (k as f64 * a[0]);
    }
}

fn call(f: Func, a: &[f64], y: &mut [f64], s1: &mut [f64], s2: &mut [f64]) {
    match f {
        Func::Sin => sin_cos(a, y, s1, false),
        Func::Cos => sin_cos(a, s1, y, false),
        Func::Sinh => sin_cos(a, y, s1, true),
        Func::Cosh => sin_cos(a, s1, y, true),
        Func::Sech => {
            sin_cos(a, s2, s1, true);
            recip(s1, y);
        }
        Func::Exp => exp(a, y),
        Func::Log => log(a, y),
        // tan' = 1 + tan², tanh' = 1 − tanh²
        Func::Tan | Func::Tanh => {
            let sign = if f == Func::Tan { 1.0 } else { -1.0 };
            let y0 = if f == Func::Tan { a[0].tan() } else { a[0].tanh() };
            ode(a, y, s1, y0, |y, w, m| {
                let sq: f64 = (0..=m).map(|i| y[i] * y[m - i]).sum();
                w[m] = if m == 0 { 1.0 } else { 0.0 } + sign * sq;
            });
        }
        Func::Atan => {
            // atan' = 1 / (1 + a²)
            mul(a, a, s2);
            s2[0] += 1.0;
            recip(s2, s1);
            y[0] = a[0].atan();
            for k in 1..y.len() {
                y[k] = (1..=k).map(|j| j as f64 * a[j] * s1[k - j]).sum::<f64>() / k as f64;
            }
        }
        Func::Sqrt => {
            y[0] = a[0].sqrt();
            for k in 1..y.len() {
                let s: f64 = (1..k).map(|j| y[j] * y[k - j]).sum();
                y[k] = (a[k] - s) / (2.0 * y[0]);
            }
        }
        Func::Abs => {
            let sign = if a[0] < 0.0 { -1.0 } else { 1.0 };
            y.iter_mut().zip(a).for_each(|(o, v)| *o = sign * v);
        }
    }
}
