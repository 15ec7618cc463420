//! The reference matcher (STIX 2.1 §9.5–§9.7): exact semantics, bounded search.
//!
//! Evaluation has two phases, mirroring the specification's structure:
//!
//! 1. Every comparison expression (`[…]`) is evaluated against every
//!    observation (§9.5): for each object of the path's type, the object path
//!    is walked (keys, list indexes, `[*]`, and `*_ref`/`*_refs` resolution
//!    within the same observed-data), and the comparison holds for the object
//!    if it holds for at least one value the path reaches. `AND` inside
//!    brackets needs one object to satisfy both sides, `OR` either. The result
//!    is the set of observations the bracket matches.
//! 2. The observation operators and qualifiers (§9.6, §9.7) are decided by a
//!    backtracking search for a *binding*: an assignment of observations to
//!    brackets where no observation is used more often than its
//!    `number_observed`, `FOLLOWEDBY` operands are ordered in time, `WITHIN`
//!    spans fit, `REPEATS` finds distinct observations, and `START`/`STOP`
//!    windows hold. The search counts its steps and gives up with
//!    [`Error::Budget`] rather than run unbounded.
//!
//! Type coercions follow §9.4 and the reference matcher: integers and floats
//! compare numerically; strings compare with binary values byte-wise when
//! every character is below U+0100; a timestamp literal parses the string
//! it is compared with; comparing kinds with no defined comparison is false
//! (and `!=` true). Properties ending `_hex` and `_bin` hold binary values.

use crate::ast::*;
use crate::net::IpNet;
use crate::observations::{Observation, Observations};
use crate::regex_dialect::{Compiled, Like};
use crate::{Error, StixVersion, parse};
use serde_json::Value;
use std::cmp::Ordering;

/// Default step budget of the binding search.
pub const DEFAULT_BUDGET: u64 = 2_000_000;

/// The object types a STIX 2.1 pattern cannot select: SDOs, SROs and the
/// bundle (patterns are over cyber-observable objects, STIX 2.1 §9.1).
const NON_SCO_TYPES_V21: &[&str] = &[
    "attack-pattern",
    "bundle",
    "campaign",
    "course-of-action",
    "extension-definition",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "language-content",
    "location",
    "malware",
    "malware-analysis",
    "marking-definition",
    "note",
    "observed-data",
    "opinion",
    "relationship",
    "report",
    "threat-actor",
    "tool",
    "sighting",
    "vulnerability",
];

/// Whether a pattern can select objects of this type: in STIX 2.1 patterns
/// are over cyber-observable objects only (§9.1), so a comparison on an SDO
/// or SRO type matches nothing.
pub fn selectable_type(object_type: &str, version: StixVersion) -> bool {
    version == StixVersion::V2_0 || !NON_SCO_TYPES_V21.contains(&object_type)
}

/// One satisfying assignment of observations, as returned by
/// [`Matcher::find_binding`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// Indexes into [`Observations::observations`], in ascending order, each
    /// once (an observed-data may stand for several observations).
    pub observations: Vec<usize>,
    /// The ids of those observed-data objects, where they have one.
    pub ids: Vec<Option<String>>,
}

/// The time span and multiplicity of one observation: all the binding
/// search needs to know of it (STIX 2.1 §9.6, §9.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObsTime {
    /// `first_observed`, nanoseconds since the epoch.
    pub first: i128,
    /// `last_observed`, nanoseconds since the epoch.
    pub last: i128,
    /// `number_observed`.
    pub count: u64,
}

impl From<&Observation> for ObsTime {
    fn from(o: &Observation) -> ObsTime {
        ObsTime {
            first: o.first,
            last: o.last,
            count: o.count,
        }
    }
}

/// A literal in compiled form.
#[derive(Debug, Clone)]
enum Lit {
    Int(i128),
    Float(f64),
    Str(String),
    Bool(bool),
    Bytes(Vec<u8>),
    Ts(i128),
}

#[derive(Debug)]
enum Op {
    Eq(Lit),
    Neq(Lit),
    Order(Ordering, bool /* or equal */, Lit),
    In(Vec<Lit>, bool /* timestamps */),
    Like(Box<Like>),
    Matches(Box<Compiled>),
    /// The operand, or the reason it is not an address block (raised when a
    /// value is compared, as the reference does).
    IsSubset(Result<IpNet, String>),
    IsSuperset(Result<IpNet, String>),
    Exists,
}

#[derive(Debug)]
struct Test {
    path: ObjectPath,
    negated: bool,
    op: Op,
}

#[derive(Debug)]
enum Cmp {
    And(Vec<Cmp>),
    Or(Vec<Cmp>),
    Test(Box<Test>),
}

#[derive(Debug)]
enum Node {
    Leaf(usize),
    And(Vec<Node>),
    Or(Vec<Node>),
    FollowedBy(Vec<Node>),
    Within(Box<Node>, i128),
    Repeats(Box<Node>, u64),
    StartStop(Box<Node>, i128, i128),
}

/// A compiled pattern.
#[derive(Debug)]
pub struct Matcher {
    version: StixVersion,
    /// The comparison expression of each `[…]`, by leaf number.
    leaves: Vec<Cmp>,
    root: Node,
    budget: u64,
    /// Set while [`Matcher::check`] runs: regular expressions are only
    /// checked, not compiled.
    check_only: bool,
}

fn compile_err(msg: String) -> Error {
    Error::Compile(msg)
}

fn lit(l: &Literal) -> Result<Lit, Error> {
    Ok(match l {
        Literal::Int(i) => Lit::Int(i128::from(*i)),
        Literal::Float(f) => Lit::Float(*f),
        Literal::Str(s) => Lit::Str(s.clone()),
        Literal::Bool(b) => Lit::Bool(*b),
        Literal::Binary(b) | Literal::Hex(b) => Lit::Bytes(b.clone()),
        Literal::Timestamp(t) => Lit::Ts(ts(t)?),
    })
}

fn ts(t: &Timestamp) -> Result<i128, Error> {
    if t.real {
        Ok(t.nanos_since_epoch())
    } else {
        Err(compile_err(format!("timestamp {t} names no real instant")))
    }
}

impl Matcher {
    /// Parses and compiles a pattern.
    pub fn new(pattern: &str, version: StixVersion) -> Result<Matcher, Error> {
        Self::from_pattern(&parse(pattern, version)?, version)
    }

    /// Compiles a parsed pattern.
    pub fn from_pattern(p: &Pattern, version: StixVersion) -> Result<Matcher, Error> {
        let mut m = Matcher {
            version,
            leaves: Vec::new(),
            root: Node::Or(Vec::new()),
            budget: DEFAULT_BUDGET,
            check_only: false,
        };
        m.root = m.obs(&p.root)?;
        Ok(m)
    }

    /// Whether [`Matcher::from_pattern`] would succeed, at a fraction of
    /// its cost: `MATCHES` expressions are checked for syntax rather than
    /// compiled (compiling one can take a hundred times longer than
    /// parsing it). A loader of many patterns uses this to refuse bad ones
    /// early and compiles the others when they are first needed.
    pub fn check(p: &Pattern, version: StixVersion) -> Result<(), Error> {
        let mut m = Matcher {
            version,
            leaves: Vec::new(),
            root: Node::Or(Vec::new()),
            budget: DEFAULT_BUDGET,
            check_only: true,
        };
        m.obs(&p.root).map(|_| ())
    }

    /// Sets the step budget of the binding search.
    pub fn with_budget(mut self, budget: u64) -> Matcher {
        self.budget = budget;
        self
    }

    fn obs(&mut self, e: &ObservationExpr) -> Result<Node, Error> {
        Ok(match e {
            ObservationExpr::Observation(c) => {
                let c = self.cmp(c)?;
                self.leaves.push(c);
                Node::Leaf(self.leaves.len() - 1)
            }
            ObservationExpr::Group(inner) => self.obs(inner)?,
            ObservationExpr::And(v) => {
                Node::And(v.iter().map(|e| self.obs(e)).collect::<Result<_, _>>()?)
            }
            ObservationExpr::Or(v) => {
                Node::Or(v.iter().map(|e| self.obs(e)).collect::<Result<_, _>>()?)
            }
            ObservationExpr::FollowedBy(v) => {
                Node::FollowedBy(v.iter().map(|e| self.obs(e)).collect::<Result<_, _>>()?)
            }
            ObservationExpr::Qualified(inner, q) => {
                let n = Box::new(self.obs(inner)?);
                match q {
                    // STIX 2.1 §9.7.1: a positive duration; kept in whole
                    // microseconds like the reference's time arithmetic.
                    Qualifier::Within(num) => {
                        let secs = num.as_f64();
                        if secs <= 0.0 || !secs.is_finite() {
                            return Err(compile_err(format!(
                                "WITHIN must be positive, got {secs}"
                            )));
                        }
                        let nanos = match num {
                            Number::Int(i) => i128::from(*i) * 1_000_000_000,
                            Number::Float(f) => ((f * 1e6).round_ties_even() as i128) * 1000,
                        };
                        Node::Within(n, nanos)
                    }
                    // §9.7.2: a positive count.
                    Qualifier::Repeats(k) => {
                        if *k < 1 {
                            return Err(compile_err(format!(
                                "REPEATS must be at least 1, got {k}"
                            )));
                        }
                        Node::Repeats(n, *k as u64)
                    }
                    // §9.7.3.
                    Qualifier::StartStop(a, b) => Node::StartStop(n, ts(a)?, ts(b)?),
                }
            }
        })
    }

    fn cmp(&mut self, c: &ComparisonExpr) -> Result<Cmp, Error> {
        Ok(match c {
            ComparisonExpr::And(v) => {
                Cmp::And(v.iter().map(|e| self.cmp(e)).collect::<Result<_, _>>()?)
            }
            ComparisonExpr::Or(v) => {
                Cmp::Or(v.iter().map(|e| self.cmp(e)).collect::<Result<_, _>>()?)
            }
            ComparisonExpr::Group(e) => self.cmp(e)?,
            ComparisonExpr::Test(t) => Cmp::Test(Box::new(Test {
                path: t.path.clone(),
                negated: t.negated,
                op: if self.check_only {
                    check_op(&t.op)?
                } else {
                    op(&t.op)?
                },
            })),
        })
    }

    /// Whether the pattern matches.
    pub fn matches(&self, obs: &Observations) -> Result<bool, Error> {
        Ok(self.find_binding(obs)?.is_some())
    }

    /// One binding of observations that satisfies the pattern, or `None`.
    pub fn find_binding(&self, obs: &Observations) -> Result<Option<Binding>, Error> {
        let o = &obs.observations;
        // Phase 1: which observations each bracket matches.
        let mut leaf_obs = Vec::with_capacity(self.leaves.len());
        for leaf in &self.leaves {
            let mut hits = Vec::new();
            for (i, ob) in o.iter().enumerate() {
                if !self.roots(leaf, ob)?.is_empty() {
                    hits.push(i);
                }
            }
            leaf_obs.push(hits);
        }
        // Phase 2: the binding search.
        let times: Vec<ObsTime> = o.iter().map(ObsTime::from).collect();
        let Some(idx) = self.solve(&times, &leaf_obs)? else {
            return Ok(None);
        };
        let ids = idx.iter().map(|&i| o[i].id.clone()).collect();
        Ok(Some(Binding {
            observations: idx,
            ids,
        }))
    }

    /// The number of brackets (`[…]`) in the pattern. Brackets are numbered
    /// in the order they appear in the pattern text.
    pub fn leaf_count(&self) -> usize {
        self.leaves.len()
    }

    /// Whether bracket `leaf` matches one observation (phase 1 of
    /// [`Matcher::find_binding`]). A leaf number out of range matches nothing.
    pub fn leaf_matches(&self, leaf: usize, ob: &Observation) -> Result<bool, Error> {
        match self.leaves.get(leaf) {
            Some(c) => Ok(!self.roots(c, ob)?.is_empty()),
            None => Ok(false),
        }
    }

    /// A cheap necessary condition for [`Matcher::solve`] to find a binding,
    /// given how many observations each bracket matches: every bracket an
    /// `AND` or `FOLLOWEDBY` needs has some, or one alternative of an `OR`
    /// does. Times and multiplicities are not considered. A streaming
    /// engine calls this before building the search's input, so that a
    /// pattern waiting for a rare observation costs nothing per common one.
    pub fn could_bind(&self, leaf_counts: &[usize]) -> bool {
        fn go(n: &Node, c: &[usize]) -> bool {
            match n {
                Node::Leaf(l) => c.get(*l).is_some_and(|&k| k > 0),
                Node::And(v) | Node::FollowedBy(v) => v.iter().all(|x| go(x, c)),
                Node::Or(v) => v.iter().any(|x| go(x, c)),
                Node::Within(e, _) | Node::Repeats(e, _) | Node::StartStop(e, _, _) => go(e, c),
            }
        }
        go(&self.root, leaf_counts)
    }

    /// Phase 2 alone: given each observation's time span and, per bracket,
    /// the ascending positions of the observations it matches, one binding
    /// (ascending positions, each once) or `None`. This lets a caller that
    /// keeps phase-1 results (a streaming engine) search without evaluating
    /// comparisons again.
    pub fn solve(
        &self,
        times: &[ObsTime],
        leaf_obs: &[Vec<usize>],
    ) -> Result<Option<Vec<usize>>, Error> {
        let mut st = Search {
            obs: times,
            leaf_obs,
            used: vec![0; times.len()],
            stack: Vec::new(),
            steps: 0,
            budget: self.budget,
            found: None,
        };
        let ok = st.solve(&self.root, &mut |st, _| {
            st.found = Some(st.stack.clone());
            Ok(true)
        })?;
        if !ok {
            return Ok(None);
        }
        let mut idx = st.found.unwrap_or_default();
        idx.sort_unstable();
        idx.dedup();
        Ok(Some(idx))
    }

    /// The objects (by position in the observation) satisfying a comparison
    /// expression; sorted.
    fn roots(&self, c: &Cmp, ob: &Observation) -> Result<Vec<usize>, Error> {
        match c {
            Cmp::Test(t) => self.test_roots(t, ob),
            Cmp::And(v) => {
                // Evaluate every operand (an error anywhere is an error), then intersect.
                let mut acc: Option<Vec<usize>> = None;
                for e in v {
                    let r = self.roots(e, ob)?;
                    acc = Some(match acc {
                        None => r,
                        Some(a) => a
                            .into_iter()
                            .filter(|x| r.binary_search(x).is_ok())
                            .collect(),
                    });
                }
                Ok(acc.unwrap_or_default())
            }
            Cmp::Or(v) => {
                let mut acc = Vec::new();
                for e in v {
                    acc.extend(self.roots(e, ob)?);
                }
                acc.sort_unstable();
                acc.dedup();
                Ok(acc)
            }
        }
    }

    fn test_roots(&self, t: &Test, ob: &Observation) -> Result<Vec<usize>, Error> {
        let ty = &t.path.object_type;
        let mut out = Vec::new();
        if self.version == StixVersion::V2_1 && NON_SCO_TYPES_V21.contains(&ty.as_str()) {
            return Ok(out);
        }
        for (i, (key, obj)) in ob.objects.iter().enumerate() {
            if obj.get("type").and_then(Value::as_str) != Some(ty.as_str()) {
                continue;
            }
            // An id listed twice is one object.
            if ob.objects[..i].iter().any(|(k, _)| k == key) {
                continue;
            }
            let values = walk(&t.path.steps, obj, ob)?;
            if let Op::Exists = t.op {
                if values.is_empty() == t.negated {
                    out.push(i);
                }
                continue;
            }
            for v in &values {
                if eval(&t.op, t.negated, v)? {
                    out.push(i);
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// [`op`] without compiling regular expressions (see [`Matcher::check`]).
fn check_op(o: &CompOp) -> Result<Op, Error> {
    match o {
        CompOp::Matches(s) => {
            if !crate::regex_dialect::syntax_ok(s) {
                // Not for the linear engine: only compiling tells whether
                // the backtracking one takes it.
                Compiled::new(s)
                    .map_err(|e| compile_err(format!("MATCHES regex does not compile: {e}")))?;
            }
            Ok(Op::Exists)
        }
        CompOp::Like(_) => Ok(Op::Exists),
        other => op(other),
    }
}

fn op(o: &CompOp) -> Result<Op, Error> {
    Ok(match o {
        CompOp::Eq(l) => Op::Eq(lit(l)?),
        CompOp::Neq(l) => Op::Neq(lit(l)?),
        CompOp::Lt(l) => Op::Order(Ordering::Less, false, lit(l)?),
        CompOp::Le(l) => Op::Order(Ordering::Less, true, lit(l)?),
        CompOp::Gt(l) => Op::Order(Ordering::Greater, false, lit(l)?),
        CompOp::Ge(l) => Op::Order(Ordering::Greater, true, lit(l)?),
        CompOp::In(set) => {
            let lits: Vec<Lit> = set.iter().map(lit).collect::<Result<_, _>>()?;
            // A set holds values of one kind, or numbers (STIX 2.1 §9.4, IN).
            let kind = |l: &Lit| std::mem::discriminant(l);
            let numeric = |l: &Lit| matches!(l, Lit::Int(_) | Lit::Float(_));
            if !lits.iter().all(|l| kind(l) == kind(&lits[0])) && !lits.iter().all(numeric) {
                return Err(compile_err("IN set mixes literal kinds".to_string()));
            }
            let timestamps = matches!(lits.first(), Some(Lit::Ts(_)));
            Op::In(lits, timestamps)
        }
        CompOp::Like(s) => Op::Like(Box::new(
            Like::new(s).map_err(|e| compile_err(format!("LIKE '{s}': {e}")))?,
        )),
        CompOp::Matches(s) => {
            Op::Matches(Box::new(Compiled::new(s).map_err(|e| {
                compile_err(format!("MATCHES regex does not compile: {e}"))
            })?))
        }
        CompOp::IsSubset(s) => Op::IsSubset(
            IpNet::parse(s).ok_or_else(|| format!("invalid IP address or CIDR block: {s}")),
        ),
        CompOp::IsSuperset(s) => Op::IsSuperset(
            IpNet::parse(s).ok_or_else(|| format!("invalid IP address or CIDR block: {s}")),
        ),
        CompOp::Exists => Op::Exists,
    })
}

/// A value an object path reaches.
#[derive(Debug, Clone)]
enum Val<'a> {
    Json(&'a Value),
    /// A binary value: a `_hex` or `_bin` property, decoded.
    Bytes(Vec<u8>),
    /// The objects a `*_refs` list resolves to.
    Refs(Vec<&'a Value>),
}

fn lenient_b64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let filtered: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+/=".contains(*c))
        .collect();
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    )
    .decode(filtered)
    .ok()
}

fn resolve<'a>(id: &Value, ob: &'a Observation, prop: &str) -> Result<Option<&'a Value>, Error> {
    let id = id.as_str().ok_or_else(|| {
        Error::Evaluation(format!(
            "reference property '{prop}' holds a non-string: {id}"
        ))
    })?;
    Ok(ob.objects.iter().find(|(k, _)| k == id).map(|(_, v)| v))
}

/// Walks an object path from a root object (STIX 2.1 §9.3): keys step into
/// dictionaries, indexes into lists, `[*]` into every element; `*_ref` and
/// `*_refs` properties resolve to the referenced objects of the same
/// observation. Values a step cannot apply to drop out.
fn walk<'a>(
    steps: &[PathStep],
    root: &'a Value,
    ob: &'a Observation,
) -> Result<Vec<Val<'a>>, Error> {
    let mut cur = vec![Val::Json(root)];
    for step in steps {
        let mut next = Vec::new();
        match step {
            PathStep::Key(k) => {
                for v in &cur {
                    let Val::Json(Value::Object(m)) = v else {
                        continue;
                    };
                    let Some(x) = m.get(k) else { continue };
                    if k.ends_with("_hex") {
                        let s = x.as_str().ok_or_else(|| {
                            Error::Evaluation(format!("'{k}' is not a hex string"))
                        })?;
                        let b = hex::decode(s).map_err(|_| {
                            Error::Evaluation(format!("'{k}' is not valid hex: {s}"))
                        })?;
                        next.push(Val::Bytes(b));
                    } else if k.ends_with("_bin") {
                        let s = x.as_str().ok_or_else(|| {
                            Error::Evaluation(format!("'{k}' is not a base64 string"))
                        })?;
                        let b = lenient_b64(s).ok_or_else(|| {
                            Error::Evaluation(format!("'{k}' is not valid base64: {s}"))
                        })?;
                        next.push(Val::Bytes(b));
                    } else {
                        next.push(Val::Json(x));
                    }
                }
                if k.ends_with("_ref") {
                    let mut resolved = Vec::new();
                    for v in &next {
                        let Val::Json(id) = v else { continue };
                        if let Some(o) = resolve(id, ob, k)? {
                            resolved.push(Val::Json(o));
                        }
                    }
                    next = resolved;
                } else if k.ends_with("_refs") {
                    let mut resolved = Vec::new();
                    for v in &next {
                        let Val::Json(Value::Array(ids)) = v else {
                            return Err(Error::Evaluation(format!(
                                "reference list property '{k}' is not a list"
                            )));
                        };
                        let mut objs = Vec::new();
                        for id in ids {
                            if let Some(o) = resolve(id, ob, k)? {
                                objs.push(o);
                            }
                        }
                        if !objs.is_empty() {
                            resolved.push(Val::Refs(objs));
                        }
                    }
                    next = resolved;
                }
            }
            PathStep::Index(n) => {
                for v in &cur {
                    let Ok(i) = usize::try_from(*n) else { continue };
                    match v {
                        Val::Json(Value::Array(a)) => next.extend(a.get(i).map(Val::Json)),
                        Val::Refs(r) => next.extend(r.get(i).map(|o| Val::Json(o))),
                        _ => {}
                    }
                }
            }
            PathStep::AnyIndex => {
                for v in &cur {
                    match v {
                        Val::Json(Value::Array(a)) => next.extend(a.iter().map(Val::Json)),
                        Val::Refs(r) => next.extend(r.iter().map(|o| Val::Json(o))),
                        _ => {}
                    }
                }
            }
        }
        cur = next;
        if cur.is_empty() {
            break;
        }
    }
    Ok(cur)
}

/// A JSON or binary value in the terms comparisons use.
enum Kind<'a> {
    Int(i128),
    Float(f64),
    Str(&'a str),
    Bool(bool),
    Bytes(&'a [u8]),
    Ts(i128),
    /// null, lists, dictionaries: nothing compares with them.
    Other,
}

fn kind<'a>(v: &'a Val<'_>) -> Kind<'a> {
    match v {
        Val::Json(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Kind::Int(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Kind::Int(i128::from(u))
            } else {
                Kind::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Val::Json(Value::String(s)) => Kind::Str(s),
        Val::Json(Value::Bool(b)) => Kind::Bool(*b),
        Val::Bytes(b) => Kind::Bytes(b),
        _ => Kind::Other,
    }
}

fn lit_kind(l: &Lit) -> Kind<'_> {
    match l {
        Lit::Int(i) => Kind::Int(*i),
        Lit::Float(f) => Kind::Float(*f),
        Lit::Str(s) => Kind::Str(s),
        Lit::Bool(b) => Kind::Bool(*b),
        Lit::Bytes(b) => Kind::Bytes(b),
        Lit::Ts(t) => Kind::Ts(*t),
    }
}

/// Exact comparison of an integer with a float.
fn cmp_int_float(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f >= 1.7e38 {
        return Some(Ordering::Less);
    }
    if f <= -1.7e38 {
        return Some(Ordering::Greater);
    }
    let fl = f.floor();
    let fi = fl as i128;
    Some(match i.cmp(&fi) {
        Ordering::Equal if f > fl => Ordering::Less,
        o => o,
    })
}

/// A string as bytes, when every character is below U+0100 (STIX 2.1 §9.4:
/// binary compared with string).
fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

/// Converts a string compared with a timestamp literal.
fn to_ts(v: &Kind<'_>) -> Result<Option<i128>, Error> {
    match v {
        Kind::Str(s) => Timestamp::parse_json(s)
            .map(|t| Some(t.nanos_since_epoch()))
            .ok_or_else(|| Error::Evaluation(format!("invalid timestamp in observed data: {s}"))),
        _ => Ok(None),
    }
}

/// Equality (STIX 2.1 §9.4, `=`): `None` when the kinds do not compare.
fn equal(a: &Kind<'_>, b: &Kind<'_>) -> bool {
    match (a, b) {
        (Kind::Int(x), Kind::Int(y)) => x == y,
        (Kind::Int(i), Kind::Float(f)) | (Kind::Float(f), Kind::Int(i)) => {
            cmp_int_float(*i, *f) == Some(Ordering::Equal)
        }
        (Kind::Float(x), Kind::Float(y)) => x == y,
        (Kind::Str(x), Kind::Str(y)) => x == y,
        (Kind::Bool(x), Kind::Bool(y)) => x == y,
        (Kind::Bytes(x), Kind::Bytes(y)) => x == y,
        (Kind::Bytes(b), Kind::Str(s)) | (Kind::Str(s), Kind::Bytes(b)) => {
            latin1(s).is_some_and(|s| s == *b)
        }
        (Kind::Ts(x), Kind::Ts(y)) => x == y,
        _ => false,
    }
}

/// Ordering: `Err(())` where the comparison is undefined for the kinds,
/// `Ok(None)` where it is defined but fails (a string with characters beyond
/// U+00FF against binary).
#[allow(clippy::result_unit_err)]
fn order(v: &Kind<'_>, l: &Kind<'_>) -> Result<Option<Ordering>, ()> {
    Ok(match (v, l) {
        (Kind::Int(x), Kind::Int(y)) => Some(x.cmp(y)),
        (Kind::Int(i), Kind::Float(f)) => cmp_int_float(*i, *f),
        (Kind::Float(f), Kind::Int(i)) => cmp_int_float(*i, *f).map(Ordering::reverse),
        (Kind::Float(x), Kind::Float(y)) => x.partial_cmp(y),
        (Kind::Str(x), Kind::Str(y)) => Some(x.cmp(y)),
        (Kind::Bytes(x), Kind::Bytes(y)) => Some(x.cmp(y)),
        (Kind::Bytes(b), Kind::Str(s)) => latin1(s).map(|s| b.cmp(&s.as_slice())),
        (Kind::Str(s), Kind::Bytes(b)) => latin1(s).map(|s| s.as_slice().cmp(b)),
        (Kind::Ts(x), Kind::Ts(y)) => Some(x.cmp(y)),
        _ => return Err(()),
    })
}

/// Set membership (STIX 2.1 §9.4, `IN`), with the equality of the
/// reference: numbers compare numerically and booleans equal 1 and 0.
fn member(v: &Kind<'_>, l: &Kind<'_>) -> bool {
    let num = |k: &Kind<'_>| match k {
        Kind::Int(i) => Some(Kind::Int(*i)),
        Kind::Float(f) => Some(Kind::Float(*f)),
        Kind::Bool(b) => Some(Kind::Int(i128::from(*b))),
        _ => None,
    };
    match (num(v), num(l)) {
        (Some(a), Some(b)) => equal(&a, &b),
        (None, None) => match (v, l) {
            (Kind::Bytes(_), Kind::Str(_)) | (Kind::Str(_), Kind::Bytes(_)) => false,
            _ => equal(v, l),
        },
        _ => false,
    }
}

/// Evaluates one comparison, with its `NOT`, on one value.
fn eval(op: &Op, negated: bool, v: &Val<'_>) -> Result<bool, Error> {
    let k = kind(v);
    let raw = match op {
        Op::Eq(l) | Op::Neq(l) => {
            let lk = lit_kind(l);
            let vk = if matches!(l, Lit::Ts(_)) {
                to_ts(&k)?.map_or(k, Kind::Ts)
            } else {
                k
            };
            equal(&vk, &lk) == matches!(op, Op::Eq(_))
        }
        Op::Order(dir, or_equal, l) => {
            let lk = lit_kind(l);
            let vk = if matches!(l, Lit::Ts(_)) {
                to_ts(&k)?.map_or(k, Kind::Ts)
            } else {
                k
            };
            match order(&vk, &lk) {
                // No defined ordering: false, and `NOT` does not make it true.
                Err(()) => return Ok(false),
                Ok(None) => false,
                Ok(Some(o)) => o == *dir || (*or_equal && o == Ordering::Equal),
            }
        }
        Op::In(set, timestamps) => {
            let vk = if *timestamps {
                to_ts(&k)?.map_or(k, Kind::Ts)
            } else {
                k
            };
            set.iter().any(|l| member(&vk, &lit_kind(l)))
        }
        Op::Like(like) => match &k {
            Kind::Str(s) => like.matches(s),
            Kind::Bytes(b) if like.applies_to_bytes => {
                let s = std::str::from_utf8(b).map_err(|_| {
                    Error::Evaluation("LIKE on a binary value that is not UTF-8".to_string())
                })?;
                like.matches(s)
            }
            _ => false,
        },
        Op::Matches(re) => match &k {
            Kind::Str(s) => re
                .search_str(s)
                .map_err(|e| Error::Evaluation(e.to_string()))?,
            Kind::Bytes(b) => re
                .search_bytes(b)
                .map_err(|e| Error::Evaluation(e.to_string()))?
                .unwrap_or(false),
            _ => false,
        },
        // STIX 2.1 §9.4: ISSUBSET — the value lies within the operand block.
        Op::IsSubset(net) => match &k {
            Kind::Str(s) => {
                let net = net.as_ref().map_err(|e| Error::Evaluation(e.clone()))?;
                let v = IpNet::parse(s).ok_or_else(|| {
                    Error::Evaluation(format!("invalid IP address or CIDR block: {s}"))
                })?;
                v.within(net)
            }
            _ => false,
        },
        // ISSUPERSET — the value block contains the operand.
        Op::IsSuperset(net) => match &k {
            Kind::Str(s) => {
                let net = net.as_ref().map_err(|e| Error::Evaluation(e.clone()))?;
                let v = IpNet::parse(s).ok_or_else(|| {
                    Error::Evaluation(format!("invalid IP address or CIDR block: {s}"))
                })?;
                net.within(&v)
            }
            _ => false,
        },
        Op::Exists => true,
    };
    Ok(raw != negated)
}

type Cont<'c, 'o> = dyn FnMut(&mut Search<'o>, usize) -> Result<bool, Error> + 'c;

/// The binding search (phase 2). `stack` holds the observation indexes of
/// the partial binding; a sub-expression's binding is `stack[start..]` when
/// its continuation runs.
struct Search<'o> {
    obs: &'o [ObsTime],
    leaf_obs: &'o [Vec<usize>],
    used: Vec<u64>,
    stack: Vec<usize>,
    steps: u64,
    budget: u64,
    found: Option<Vec<usize>>,
}

impl<'o> Search<'o> {
    fn tick(&mut self) -> Result<(), Error> {
        self.steps += 1;
        if self.steps > self.budget {
            Err(Error::Budget(self.budget))
        } else {
            Ok(())
        }
    }

    fn max_first(&self, from: usize, to: usize) -> i128 {
        self.stack[from..to]
            .iter()
            .map(|&i| self.obs[i].first)
            .max()
            .unwrap_or(i128::MIN)
    }

    fn min_last(&self, from: usize, to: usize) -> i128 {
        self.stack[from..to]
            .iter()
            .map(|&i| self.obs[i].last)
            .min()
            .unwrap_or(i128::MAX)
    }

    /// Enumerates the bindings of `n` (calling `k` with their start) until
    /// `k` accepts one.
    fn solve(&mut self, n: &Node, k: &mut Cont<'_, 'o>) -> Result<bool, Error> {
        self.tick()?;
        let start = self.stack.len();
        match n {
            Node::Leaf(l) => self.leaf(*l, 0, start, k),
            Node::Or(v) => {
                for e in v {
                    if self.solve(e, k)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Node::And(v) => self.seq(v, start, false, k),
            Node::FollowedBy(v) => self.seq(v, start, true, k),
            // STIX 2.1 §9.7.1: all observations within the duration: the
            // latest first_observed at most `d` after the earliest last_observed.
            Node::Within(e, d) => {
                let d = *d;
                self.solve(e, &mut |st: &mut Search<'o>, s| {
                    let end = st.stack.len();
                    if st.max_first(s, end) - st.min_last(s, end) <= d {
                        k(st, s)
                    } else {
                        Ok(false)
                    }
                })
            }
            // §9.7.3: every observation overlaps [start, stop).
            Node::StartStop(e, a, b) => {
                let (a, b) = (*a, *b);
                if a >= b {
                    return Ok(false);
                }
                self.solve(e, &mut |st: &mut Search<'o>, s| {
                    let ok = st.stack[s..]
                        .iter()
                        .all(|&i| st.obs[i].first < b && st.obs[i].last >= a);
                    if ok { k(st, s) } else { Ok(false) }
                })
            }
            // §9.7.2: `times` bindings of the expression on distinct observations.
            Node::Repeats(e, times) => self.repeat(e, *times, start, 0, k),
        }
    }

    /// Observations for one bracket, from candidate position `from` on.
    fn leaf(
        &mut self,
        l: usize,
        from: usize,
        start: usize,
        k: &mut Cont<'_, 'o>,
    ) -> Result<bool, Error> {
        let cands = self.leaf_obs.get(l).map_or(&[][..], |v| &v[..]);
        for &i in cands.iter().skip_while(|&&i| i < from) {
            if self.used[i] >= self.obs[i].count {
                continue;
            }
            self.tick()?;
            self.used[i] += 1;
            self.stack.push(i);
            let r = k(self, start);
            self.stack.pop();
            self.used[i] -= 1;
            if r? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `AND` (and, with `ordered`, `FOLLOWEDBY`) over operands: each operand
    /// bound in turn; for `FOLLOWEDBY` (left-associative) everything bound so
    /// far must have a first_observed no later than the new operand's
    /// earliest last_observed.
    fn seq(
        &mut self,
        v: &[Node],
        start: usize,
        ordered: bool,
        k: &mut Cont<'_, 'o>,
    ) -> Result<bool, Error> {
        fn go<'o>(
            st: &mut Search<'o>,
            v: &[Node],
            i: usize,
            start: usize,
            ordered: bool,
            k: &mut Cont<'_, 'o>,
        ) -> Result<bool, Error> {
            if i == v.len() {
                return k(st, start);
            }
            st.solve(&v[i], &mut |st: &mut Search<'o>, mid| {
                if ordered && i > 0 {
                    let end = st.stack.len();
                    if st.max_first(start, mid) > st.min_last(mid, end) {
                        return Ok(false);
                    }
                }
                go(st, v, i + 1, start, ordered, k)
            })
        }
        go(self, v, 0, start, ordered, k)
    }

    fn repeat(
        &mut self,
        e: &Node,
        times: u64,
        start: usize,
        from: usize,
        k: &mut Cont<'_, 'o>,
    ) -> Result<bool, Error> {
        if times == 0 {
            return k(self, start);
        }
        // Over a single bracket, choose observations in ascending order so
        // that each combination is tried once.
        if let Node::Leaf(l) = e {
            return self.leaf(*l, from, start, &mut |st: &mut Search<'o>, _| {
                let last = st.stack.last().copied().unwrap_or(0);
                st.repeat(e, times - 1, start, last, k)
            });
        }
        self.solve(e, &mut |st: &mut Search<'o>, _| {
            st.repeat(e, times - 1, start, 0, k)
        })
    }
}

/// Calls `f` with every JSON value an object path reaches from `root`
/// within observation `ob`, with the traversal of the matcher (STIX 2.1
/// §9.3): keys, list indexes, `[*]`, and `*_ref`/`*_refs` resolution. Values
/// of `_hex`/`_bin` properties and unresolvable references are skipped, and
/// so are steps the matcher would report as errors; an indexed engine uses
/// this to look values up, then confirms candidates with [`Matcher`].
pub fn visit_path<'a>(
    steps: &[PathStep],
    root: &'a Value,
    ob: &'a Observation,
    f: &mut dyn FnMut(&'a Value),
) {
    let Some((step, rest)) = steps.split_first() else {
        f(root);
        return;
    };
    match step {
        PathStep::Key(k) => {
            let Some(x) = root.as_object().and_then(|m| m.get(k)) else {
                return;
            };
            if k.ends_with("_hex") || k.ends_with("_bin") {
                return;
            }
            if k.ends_with("_ref") {
                if let Ok(Some(o)) = resolve(x, ob, k) {
                    visit_path(rest, o, ob, f);
                }
            } else if k.ends_with("_refs") {
                // A resolved list behaves as a list of the objects.
                let Value::Array(ids) = x else { return };
                let objs: Vec<&'a Value> = ids
                    .iter()
                    .filter_map(|id| resolve(id, ob, k).ok().flatten())
                    .collect();
                visit_refs(rest, &objs, ob, f);
            } else {
                visit_path(rest, x, ob, f);
            }
        }
        PathStep::Index(n) => {
            if let (Value::Array(a), Ok(i)) = (root, usize::try_from(*n))
                && let Some(x) = a.get(i)
            {
                visit_path(rest, x, ob, f);
            }
        }
        PathStep::AnyIndex => {
            if let Value::Array(a) = root {
                for x in a {
                    visit_path(rest, x, ob, f);
                }
            }
        }
    }
}

/// [`visit_path`] continued after a `*_refs` step: the next step indexes the
/// resolved objects; with no next step the list itself is not a comparable
/// value.
fn visit_refs<'a>(
    steps: &[PathStep],
    objs: &[&'a Value],
    ob: &'a Observation,
    f: &mut dyn FnMut(&'a Value),
) {
    let Some((step, rest)) = steps.split_first() else {
        return;
    };
    match step {
        PathStep::Index(n) => {
            if let Some(o) = usize::try_from(*n).ok().and_then(|i| objs.get(i)) {
                visit_path(rest, o, ob, f);
            }
        }
        PathStep::AnyIndex => {
            for o in objs {
                visit_path(rest, o, ob, f);
            }
        }
        PathStep::Key(_) => {}
    }
}

/// Decides a pattern against observations given as JSON.
pub fn matches_json(
    pattern: &str,
    observations: &Value,
    version: StixVersion,
) -> Result<bool, Error> {
    let m = Matcher::new(pattern, version)?;
    let obs = Observations::from_json(observations, version)?;
    m.matches(&obs)
}
