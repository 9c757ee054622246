//! Binary operators: arithmetic, comparison (filtering or `bool`), and the set operators,
//! between scalars and vectors, with Prometheus' vector matching (`on`, `ignoring`,
//! `group_left`, `group_right`).

use std::{
    cell::RefCell,
    hash::{Hash, Hasher},
    sync::Arc,
};

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet, FxHasher};

use promql_parser::{
    label::Labels as NameList,
    parser::{
        BinaryExpr, LabelModifier, VectorMatchCardinality,
        token::{T_LAND, T_LOR, T_LUNLESS},
    },
};

use super::{
    Labels, Metric, QueryError, Sample, Vector,
    eval::{Evaluator, Steps},
    value::unnamed,
};
use crate::store::NAME_LABEL;

/// Evaluates `b` at every time.
pub(super) fn eval(
    ev: &mut Evaluator<'_>,
    b: &BinaryExpr,
    times: &[i64],
) -> Result<Steps, QueryError> {
    let op = b.op.to_string();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    if b.modifier
        .as_ref()
        .is_some_and(|m| m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
    {
        return Err(QueryError::BadData(
            "fill modifiers of binary operators are not supported".into(),
        ));
    }
    let lhs = ev.eval(&b.lhs, times)?;
    let rhs = ev.eval(&b.rhs, times)?;
    match (lhs, rhs) {
        (Steps::Scalar(l), Steps::Scalar(r)) => {
            let mut out = Vec::with_capacity(l.len());
            for (x, y) in l.into_iter().zip(r) {
                let (v, keep) = apply(&op, x, y)?;
                out.push(if is_comparison(&op) {
                    f64::from(u8::from(keep))
                } else {
                    v
                });
            }
            Ok(Steps::Scalar(out))
        }
        (Steps::Vector(l), Steps::Scalar(r)) => {
            Ok(Steps::Vector(vector_scalar(&op, l, r, false, return_bool)?))
        }
        (Steps::Scalar(l), Steps::Vector(r)) => {
            Ok(Steps::Vector(vector_scalar(&op, r, l, true, return_bool)?))
        }
        (Steps::Vector(l), Steps::Vector(r)) => {
            let matching = Matching::of(b);
            let mut out = Vec::with_capacity(l.len());
            for (lv, rv) in l.into_iter().zip(r) {
                let v = match b.op.id() {
                    T_LAND => and(lv, rv, &matching),
                    T_LOR => or(lv, rv, &matching),
                    T_LUNLESS => unless(lv, rv, &matching),
                    _ => vector_vector(&op, lv, rv, &matching, return_bool)?,
                };
                out.push(v);
            }
            Ok(Steps::Vector(out))
        }
        _ => Err(QueryError::BadData(format!(
            "operator {op} is not defined on string operands"
        ))),
    }
}

pub(super) fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

/// `lhs op rhs`, and for a comparison whether it holds (the value is then `lhs`).
fn apply(op: &str, l: f64, r: f64) -> Result<(f64, bool), QueryError> {
    Ok(match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (l % r, true),
        "^" => (l.powf(r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        other => {
            return Err(QueryError::BadData(format!(
                "operator {other} is not defined between numbers"
            )));
        }
    })
}

fn drops_name(op: &str, return_bool: bool) -> bool {
    return_bool || !is_comparison(op)
}

fn vector_scalar(
    op: &str,
    vectors: Vec<Vector>,
    scalars: Vec<f64>,
    scalar_left: bool,
    return_bool: bool,
) -> Result<Vec<Vector>, QueryError> {
    let drop_name = drops_name(op, return_bool);
    let mut out = Vec::with_capacity(vectors.len());
    for (v, s) in vectors.into_iter().zip(scalars) {
        let mut step = Vec::with_capacity(v.len());
        for sample in v {
            let (l, r) = if scalar_left {
                (s, sample.value)
            } else {
                (sample.value, s)
            };
            let (mut value, keep) = apply(op, l, r)?;
            if is_comparison(op) {
                // The vector's element is the value, whichever side it is on.
                value = sample.value;
            }
            if return_bool {
                value = f64::from(u8::from(keep));
            } else if !keep {
                continue;
            }
            step.push(Sample {
                metric: if drop_name {
                    unnamed(&sample.metric)
                } else {
                    sample.metric
                },
                value,
                ts: sample.ts,
            });
        }
        out.push(step);
    }
    Ok(out)
}

/// How two vectors' samples are paired.
pub(super) struct Matching {
    card: Card,
    /// `on(...)` when true, `ignoring(...)` (or nothing) when false.
    on: bool,
    labels: Vec<String>,
    /// `group_left(...)`/`group_right(...)` labels taken from the "one" side.
    include: Vec<String>,
    /// Signatures by label address, across steps: both sides' samples were all allocated
    /// before the operator ran, so an address names one label set throughout.
    memo: RefCell<HashMap<*const Labels, u64>>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

fn names(list: &NameList) -> Vec<String> {
    list.labels.clone()
}

impl Matching {
    fn of(b: &BinaryExpr) -> Self {
        let set = b.op.is_set_operator();
        let Some(m) = &b.modifier else {
            return Self {
                card: if set {
                    Card::ManyToMany
                } else {
                    Card::OneToOne
                },
                on: false,
                labels: Vec::new(),
                include: Vec::new(),
                memo: RefCell::default(),
            };
        };
        let (card, include) = match &m.card {
            VectorMatchCardinality::OneToOne => (Card::OneToOne, Vec::new()),
            VectorMatchCardinality::ManyToOne(l) => (Card::ManyToOne, names(l)),
            VectorMatchCardinality::OneToMany(l) => (Card::OneToMany, names(l)),
            VectorMatchCardinality::ManyToMany => (Card::ManyToMany, Vec::new()),
        };
        let card = if set { Card::ManyToMany } else { card };
        let (on, labels) = match &m.matching {
            Some(LabelModifier::Include(l)) => (true, names(l)),
            Some(LabelModifier::Exclude(l)) => (false, names(l)),
            None => (false, Vec::new()),
        };
        Self {
            card,
            on,
            labels,
            include,
            memo: RefCell::default(),
        }
    }

    /// The hash of the labels two samples must share to match.
    fn signature(&self, m: &Metric) -> u64 {
        *self
            .memo
            .borrow_mut()
            .entry(Arc::as_ptr(m))
            .or_insert_with(|| self.compute_signature(m))
    }

    fn compute_signature(&self, m: &Labels) -> u64 {
        let mut h = FxHasher::default();
        for (k, v) in m.pairs() {
            let used = if self.on {
                self.labels.iter().any(|l| l == k)
            } else {
                k != NAME_LABEL && !self.labels.iter().any(|l| l == k)
            };
            if used {
                k.hash(&mut h);
                v.hash(&mut h);
            }
        }
        h.finish()
    }

    /// The labels of the match group, for error messages.
    fn group(&self, m: &Labels) -> Labels {
        if self.on {
            m.only(&self.labels)
        } else {
            let mut drop = self.labels.clone();
            drop.push(NAME_LABEL.into());
            m.without(&drop)
        }
    }
}

fn and(l: Vector, r: Vector, m: &Matching) -> Vector {
    let right: HashSet<u64> = r.iter().map(|s| m.signature(&s.metric)).collect();
    l.into_iter()
        .filter(|s| right.contains(&m.signature(&s.metric)))
        .collect()
}

fn or(l: Vector, r: Vector, m: &Matching) -> Vector {
    let left: HashSet<u64> = l.iter().map(|s| m.signature(&s.metric)).collect();
    let mut out = l;
    out.extend(
        r.into_iter()
            .filter(|s| !left.contains(&m.signature(&s.metric))),
    );
    out
}

fn unless(l: Vector, r: Vector, m: &Matching) -> Vector {
    let right: HashSet<u64> = r.iter().map(|s| m.signature(&s.metric)).collect();
    l.into_iter()
        .filter(|s| !right.contains(&m.signature(&s.metric)))
        .collect()
}

fn vector_vector(
    op: &str,
    lhs: Vector,
    rhs: Vector,
    m: &Matching,
    return_bool: bool,
) -> Result<Vector, QueryError> {
    if m.card == Card::ManyToMany {
        return Err(QueryError::BadData(format!(
            "many-to-many matching is only allowed for set operators, not {op}"
        )));
    }
    // The "one" side is hashed; for group_right it is the left.
    let (many, one) = if m.card == Card::OneToMany {
        (rhs, lhs)
    } else {
        (lhs, rhs)
    };
    let mut one_by_sig: HashMap<u64, Sample> = HashMap::default();
    for s in one {
        let sig = m.signature(&s.metric);
        if let Some(prev) = one_by_sig.get(&sig) {
            let side = if m.card == Card::OneToMany {
                "left"
            } else {
                "right"
            };
            return Err(QueryError::Execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                m.group(&s.metric),
                prev.metric,
                s.metric
            )));
        }
        one_by_sig.insert(sig, s);
    }
    // One-to-one: the match groups seen. Otherwise: per group, the result label sets.
    let mut matched_once: HashSet<u64> = HashSet::default();
    let mut matched: HashMap<u64, HashSet<Labels>> = HashMap::default();
    let mut out = Vec::new();
    for s in many {
        let sig = m.signature(&s.metric);
        let Some(o) = one_by_sig.get(&sig) else {
            continue;
        };
        // Ambiguous one-to-one matches are refused even when the comparison would filter
        // them out, so that the error does not depend on the data's values.
        if m.card == Card::OneToOne && !matched_once.insert(sig) {
            return Err(QueryError::Execution(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
            ));
        }
        let (fl, fr) = if m.card == Card::OneToMany {
            (o.value, s.value)
        } else {
            (s.value, o.value)
        };
        let (mut value, keep) = apply(op, fl, fr)?;
        if return_bool {
            value = f64::from(u8::from(keep));
        } else if !keep {
            continue;
        }
        let metric = result_metric(&s.metric, &o.metric, op, m, return_bool);
        if m.card != Card::OneToOne {
            let seen = matched.entry(sig).or_default();
            if !seen.insert(metric.clone()) {
                return Err(QueryError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
        }
        out.push(Sample {
            metric: Arc::new(metric),
            value,
            ts: s.ts,
        });
    }
    Ok(out)
}

/// The labels of a result: the "many" side's, without the name where the operator drops
/// it, narrowed by `on`/`ignoring` for one-to-one, with `group_x` labels from the "one"
/// side.
fn result_metric(many: &Labels, one: &Labels, op: &str, m: &Matching, return_bool: bool) -> Labels {
    let mut out = if drops_name(op, return_bool) {
        many.without_name()
    } else {
        many.clone()
    };
    if m.card == Card::OneToOne {
        out = if m.on {
            out.only(&m.labels)
        } else {
            out.without(&m.labels)
        };
    }
    for l in &m.include {
        out = out.with(l, one.get(l));
    }
    out
}
