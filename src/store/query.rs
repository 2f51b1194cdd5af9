//! `getBuildsets`' vocabulary: filters and their SQL conditions, sort keys and
//! page requests (the paging itself is in `paging.rs`), all done in SQL.

use entity::{buildrequests, buildset_sourcestamps, buildsets, sourcestamps};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, LikeExpr, Query, SelectStatement};
use sea_orm::Value;
use serde::{Deserialize, Serialize};

use super::rows::BuildsetRow;

/// A column (or to-many relation) a buildset can be filtered on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Bsid,
    Reason,
    ExternalIdstring,
    SubmittedAt,
    CompleteAt,
    /// As shown to clients: null while incomplete.
    Results,
    ParentBuildid,
    RebuiltBuildid,
    /// Matches when any of the buildset's sourcestamps matches.
    Branch,
    Repository,
    Project,
    Codebase,
    /// Matches when any of the buildset's build requests matches.
    Builderid,
}

/// A value compared against a column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Str(String),
}

impl Scalar {
    pub fn text(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            Scalar::Int(_) => None,
        }
    }
}

impl From<Scalar> for Value {
    fn from(s: Scalar) -> Value {
        match s {
            Scalar::Int(i) => i.into(),
            Scalar::Str(s) => s.into(),
        }
    }
}

/// Buildbot's result-spec operators, plus `contains` / `startsWith` on strings.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Eq(Scalar),
    Ne(Scalar),
    Lt(Scalar),
    Le(Scalar),
    Gt(Scalar),
    Ge(Scalar),
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    IsNull(bool),
    Contains(String),
    StartsWith(String),
}

/// A filter tree over buildsets.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Pred(Field, Op),
}

impl Filter {
    /// (conditions, compared values) in the tree: what bounds its SQL's size.
    /// Every text this filter compares.
    pub fn texts(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(f) = stack.pop() {
            match f {
                Filter::And(fs) | Filter::Or(fs) => stack.extend(fs),
                Filter::Not(f) => stack.push(f),
                Filter::Pred(_, op) => match op {
                    Op::Eq(v) | Op::Ne(v) | Op::Lt(v) | Op::Le(v) | Op::Gt(v) | Op::Ge(v) => {
                        out.extend(v.text())
                    }
                    Op::In(vs) | Op::NotIn(vs) => out.extend(vs.iter().filter_map(Scalar::text)),
                    Op::Contains(t) | Op::StartsWith(t) => out.push(t),
                    Op::IsNull(_) => {}
                },
            }
        }
        out
    }

    pub fn size(&self) -> (usize, usize) {
        match self {
            Filter::And(fs) | Filter::Or(fs) => fs.iter().fold((0, 0), |(c, v), f| {
                let (fc, fv) = f.size();
                (c + fc, v + fv)
            }),
            Filter::Not(f) => f.size(),
            Filter::Pred(_, op) => (
                1,
                match op {
                    Op::In(vs) | Op::NotIn(vs) => vs.len(),
                    _ => 1,
                },
            ),
        }
    }
}

/// A column a page can be ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderField {
    Bsid,
    SubmittedAt,
    CompleteAt,
    Results,
    Reason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderKey {
    pub field: OrderField,
    pub descending: bool,
}

/// The values of a row's sort keys, in the order of [`effective_order`]: where a
/// page starts or ends.
pub type KeyValues = Vec<Option<Scalar>>;

/// Which page of which buildsets: the rows strictly between two key positions,
/// the first (or last) `take_first` (`take_last`) of them.
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    pub complete: Option<bool>,
    pub filter: Option<Filter>,
    pub order: Vec<OrderKey>,
    pub take_first: Option<u64>,
    pub start_after: Option<KeyValues>,
    pub take_last: Option<u64>,
    pub end_before: Option<KeyValues>,
}

/// One page, in the requested order, each row with its sort-key values.
#[derive(Clone, Debug)]
pub struct Page {
    pub rows: Vec<(BuildsetRow, KeyValues)>,
    /// Whether rows follow the page (in the order).
    pub more_after: bool,
    /// Whether rows precede it.
    pub more_before: bool,
}

pub(super) fn bs_col(c: buildsets::Column) -> Expr {
    Expr::col((buildsets::Entity, c))
}

/// `results` as clients see it: null until the buildset is complete (Buildbot stores -1).
fn results_expr() -> Expr {
    Expr::case(
        bs_col(buildsets::Column::Complete).ne(0),
        bs_col(buildsets::Column::Results),
    )
    .finally(Expr::null())
    .into()
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

fn apply_op(e: Expr, op: &Op) -> Expr {
    match op.clone() {
        Op::Eq(v) => e.eq(Value::from(v)),
        Op::Ne(v) => e.ne(Value::from(v)),
        Op::Lt(v) => e.lt(Value::from(v)),
        Op::Le(v) => e.lte(Value::from(v)),
        Op::Gt(v) => e.gt(Value::from(v)),
        Op::Ge(v) => e.gte(Value::from(v)),
        Op::In(vs) if vs.is_empty() => Expr::cust("1 = 0"),
        Op::In(vs) => e.is_in(vs.into_iter().map(Value::from)),
        // Like `ne`, an exclusion never matches a null value.
        Op::NotIn(vs) if vs.is_empty() => e.is_not_null(),
        Op::NotIn(vs) => e.is_not_in(vs.into_iter().map(Value::from)),
        Op::IsNull(true) => e.is_null(),
        Op::IsNull(false) => e.is_not_null(),
        Op::Contains(s) => e.like(LikeExpr::new(format!("%{}%", escape_like(&s))).escape('!')),
        Op::StartsWith(s) => e.like(LikeExpr::new(format!("{}%", escape_like(&s))).escape('!')),
    }
}

pub(super) fn sourcestamp_subquery(pred: Condition) -> SelectStatement {
    Query::select()
        .column((
            buildset_sourcestamps::Entity,
            buildset_sourcestamps::Column::Buildsetid,
        ))
        .from(buildset_sourcestamps::Entity)
        .inner_join(
            sourcestamps::Entity,
            Expr::col((sourcestamps::Entity, sourcestamps::Column::Id)).equals((
                buildset_sourcestamps::Entity,
                buildset_sourcestamps::Column::Sourcestampid,
            )),
        )
        .cond_where(pred)
        .to_owned()
}

pub(super) fn ss_col(c: sourcestamps::Column) -> Expr {
    Expr::col((sourcestamps::Entity, c))
}

fn predicate(field: Field, op: &Op) -> Expr {
    use buildsets::Column as C;
    let direct = |c: C| apply_op(bs_col(c), op);
    let via_stamp = |c: sourcestamps::Column| {
        bs_col(C::Id).in_subquery(sourcestamp_subquery(
            Condition::all().add(apply_op(ss_col(c), op)),
        ))
    };
    match field {
        Field::Bsid => direct(C::Id),
        Field::Reason => direct(C::Reason),
        Field::ExternalIdstring => direct(C::ExternalIdstring),
        Field::SubmittedAt => direct(C::SubmittedAt),
        Field::CompleteAt => direct(C::CompleteAt),
        Field::Results => apply_op(results_expr(), op),
        Field::ParentBuildid => direct(C::ParentBuildid),
        Field::RebuiltBuildid => direct(C::RebuiltBuildid),
        Field::Branch => via_stamp(sourcestamps::Column::Branch),
        Field::Repository => via_stamp(sourcestamps::Column::Repository),
        Field::Project => via_stamp(sourcestamps::Column::Project),
        Field::Codebase => via_stamp(sourcestamps::Column::Codebase),
        Field::Builderid => bs_col(C::Id).in_subquery(
            Query::select()
                .column((buildrequests::Entity, buildrequests::Column::Buildsetid))
                .from(buildrequests::Entity)
                .and_where(apply_op(
                    Expr::col((buildrequests::Entity, buildrequests::Column::Builderid)),
                    op,
                ))
                .to_owned(),
        ),
    }
}

/// The WHERE condition of a filter tree (for the change feed's matching).
pub(crate) fn filter_condition(filter: &Filter) -> Condition {
    condition(filter)
}

fn condition(filter: &Filter) -> Condition {
    match filter {
        Filter::And(fs) => fs.iter().fold(Condition::all(), |c, f| c.add(condition(f))),
        Filter::Or(fs) if fs.is_empty() => Condition::all().add(Expr::cust("1 = 0")),
        Filter::Or(fs) => fs.iter().fold(Condition::any(), |c, f| c.add(condition(f))),
        Filter::Not(f) => condition(f).not(),
        Filter::Pred(field, op) => Condition::all().add(predicate(*field, op)),
    }
}

/// The WHERE clause shared by a page and its count.
pub(super) fn base_condition(complete: Option<bool>, filter: Option<&Filter>) -> Condition {
    let mut cond = Condition::all();
    match complete {
        Some(true) => cond = cond.add(bs_col(buildsets::Column::Complete).ne(0)),
        Some(false) => cond = cond.add(bs_col(buildsets::Column::Complete).eq(0)),
        None => {}
    }
    if let Some(f) = filter {
        cond = cond.add(condition(f));
    }
    cond
}

impl OrderField {
    pub(super) fn expr(self) -> Expr {
        match self {
            OrderField::Bsid => bs_col(buildsets::Column::Id),
            OrderField::SubmittedAt => bs_col(buildsets::Column::SubmittedAt),
            OrderField::CompleteAt => bs_col(buildsets::Column::CompleteAt),
            OrderField::Results => results_expr(),
            OrderField::Reason => bs_col(buildsets::Column::Reason),
        }
    }

    pub(super) fn nullable(self) -> bool {
        !matches!(self, OrderField::Bsid | OrderField::SubmittedAt)
    }

    /// A stable name for the field, for telling one ordering from another.
    pub fn name(self) -> &'static str {
        match self {
            OrderField::Bsid => "BSID",
            OrderField::SubmittedAt => "SUBMITTED_AT",
            OrderField::CompleteAt => "COMPLETE_AT",
            OrderField::Results => "RESULTS",
            OrderField::Reason => "REASON",
        }
    }

    pub(super) fn value_of(self, row: &buildsets::Model) -> Option<Scalar> {
        match self {
            OrderField::Bsid => Some(Scalar::Int(row.id.into())),
            OrderField::SubmittedAt => Some(Scalar::Int(row.submitted_at.into())),
            OrderField::CompleteAt => row.complete_at.map(|t| Scalar::Int(t.into())),
            OrderField::Results => (row.complete != 0)
                .then_some(row.results)
                .flatten()
                .map(|r| Scalar::Int(r.into())),
            OrderField::Reason => row.reason.clone().map(Scalar::Str),
        }
    }
}

pub use super::paging::{
    count_buildsets, effective_order, get_buildsets, get_recent_buildsets, keys_fit,
};
