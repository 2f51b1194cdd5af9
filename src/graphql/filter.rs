//! The `buildsets` connection: its filter and order inputs and the Relay output types.

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};

use super::fast::Each;
use super::scalars::DateTime;
use super::{app, StoreResultExt};
use crate::error::bad_input;
use crate::store::query::{Field, Filter, Op, OrderField, OrderKey, Scalar};
use crate::store::BuildsetView;

/// Comparisons on an integer column. Several operators in one filter must all hold;
/// a null value matches only `isNull: true`.
#[derive(InputObject, Default, Clone)]
pub struct IntFilter {
    /// Equal to.
    eq: Option<i32>,
    /// Not equal to (never matches null).
    ne: Option<i32>,
    /// Less than.
    lt: Option<i32>,
    /// Less than or equal to.
    le: Option<i32>,
    /// Greater than.
    gt: Option<i32>,
    /// Greater than or equal to.
    ge: Option<i32>,
    /// One of.
    #[graphql(name = "in")]
    in_list: Option<Vec<i32>>,
    /// None of (never matches null).
    not_in: Option<Vec<i32>>,
    /// Is null (true) or is not null (false).
    is_null: Option<bool>,
}

/// Comparisons on a text column (compared as the database's collation compares).
#[derive(InputObject, Default, Clone)]
pub struct StringFilter {
    /// Equal to.
    eq: Option<String>,
    /// Not equal to (never matches null).
    ne: Option<String>,
    /// Less than.
    lt: Option<String>,
    /// Less than or equal to.
    le: Option<String>,
    /// Greater than.
    gt: Option<String>,
    /// Greater than or equal to.
    ge: Option<String>,
    /// One of.
    #[graphql(name = "in")]
    in_list: Option<Vec<String>>,
    /// None of (never matches null).
    not_in: Option<Vec<String>>,
    /// Is null (true) or is not null (false).
    is_null: Option<bool>,
    /// Contains this text (`%` and `_` are literal).
    contains: Option<String>,
    /// Starts with this text (`%` and `_` are literal).
    starts_with: Option<String>,
}

/// Comparisons on a time column (second precision).
#[derive(InputObject, Default, Clone)]
pub struct DateTimeFilter {
    /// Equal to.
    eq: Option<DateTime>,
    /// Not equal to (never matches null).
    ne: Option<DateTime>,
    /// Before.
    lt: Option<DateTime>,
    /// At or before.
    le: Option<DateTime>,
    /// After.
    gt: Option<DateTime>,
    /// At or after.
    ge: Option<DateTime>,
    /// One of.
    #[graphql(name = "in")]
    in_list: Option<Vec<DateTime>>,
    /// None of (never matches null).
    not_in: Option<Vec<DateTime>>,
    /// Is null (true) or is not null (false).
    is_null: Option<bool>,
}

/// Which buildsets to return. All given conditions must hold. The sourcestamp fields
/// match when ANY of a buildset's sourcestamps matches, `builderid` when any of its
/// build requests does; each buildset appears once.
#[derive(InputObject, Default, Clone)]
pub struct BuildsetFilter {
    /// The buildset id.
    bsid: Option<IntFilter>,
    /// The reason.
    reason: Option<StringFilter>,
    /// The external id string.
    external_idstring: Option<StringFilter>,
    /// When it was submitted.
    submitted_at: Option<DateTimeFilter>,
    /// When it completed (null while incomplete).
    complete_at: Option<DateTimeFilter>,
    /// The result code (null while incomplete).
    results: Option<IntFilter>,
    /// The parent build id.
    parent_buildid: Option<IntFilter>,
    /// The rebuilt build id.
    rebuilt_buildid: Option<IntFilter>,
    /// A sourcestamp's branch.
    branch: Option<StringFilter>,
    /// A sourcestamp's repository.
    repository: Option<StringFilter>,
    /// A sourcestamp's project.
    project: Option<StringFilter>,
    /// A sourcestamp's codebase.
    codebase: Option<StringFilter>,
    /// A build request's builder id.
    builderid: Option<IntFilter>,
    /// All of these hold.
    and: Option<Vec<BuildsetFilter>>,
    /// At least one of these holds.
    or: Option<Vec<BuildsetFilter>>,
    /// This does not hold.
    not: Option<Box<BuildsetFilter>>,
}

fn epoch(field: &str) -> impl Fn(DateTime) -> Result<Scalar> + '_ {
    move |t| Ok(Scalar::Int(t.epoch(field)?.into()))
}

fn int(v: i32) -> Result<Scalar> {
    Ok(Scalar::Int(v.into()))
}

fn text(v: String) -> Result<Scalar> {
    Ok(Scalar::Str(v))
}

type MakeOp = fn(Scalar) -> Op;

/// The comparison operators shared by every field filter.
struct Cmp<T> {
    eq: Option<T>,
    ne: Option<T>,
    lt: Option<T>,
    le: Option<T>,
    gt: Option<T>,
    ge: Option<T>,
    in_list: Option<Vec<T>>,
    not_in: Option<Vec<T>>,
    is_null: Option<bool>,
}

impl<T> Cmp<T> {
    /// Each given operator becomes one predicate on `field`.
    fn add(
        self,
        out: &mut Vec<Filter>,
        field: Field,
        conv: impl Fn(T) -> Result<Scalar>,
    ) -> Result<()> {
        let singles: [(Option<T>, MakeOp); 6] = [
            (self.eq, Op::Eq),
            (self.ne, Op::Ne),
            (self.lt, Op::Lt),
            (self.le, Op::Le),
            (self.gt, Op::Gt),
            (self.ge, Op::Ge),
        ];
        for (value, op) in singles {
            if let Some(v) = value {
                out.push(Filter::Pred(field, op(conv(v)?)));
            }
        }
        if let Some(vs) = self.in_list {
            out.push(Filter::Pred(
                field,
                Op::In(vs.into_iter().map(&conv).collect::<Result<_>>()?),
            ));
        }
        if let Some(vs) = self.not_in {
            out.push(Filter::Pred(
                field,
                Op::NotIn(vs.into_iter().map(&conv).collect::<Result<_>>()?),
            ));
        }
        if let Some(b) = self.is_null {
            out.push(Filter::Pred(field, Op::IsNull(b)));
        }
        Ok(())
    }
}

macro_rules! cmp_of {
    ($f:expr) => {
        Cmp {
            eq: $f.eq,
            ne: $f.ne,
            lt: $f.lt,
            le: $f.le,
            gt: $f.gt,
            ge: $f.ge,
            in_list: $f.in_list,
            not_in: $f.not_in,
            is_null: $f.is_null,
        }
    };
}

impl IntFilter {
    fn add(self, out: &mut Vec<Filter>, field: Field) -> Result<()> {
        cmp_of!(self).add(out, field, int)
    }
}

impl StringFilter {
    fn add(self, out: &mut Vec<Filter>, field: Field) -> Result<()> {
        let (contains, starts_with) = (self.contains.clone(), self.starts_with.clone());
        cmp_of!(self).add(out, field, text)?;
        if let Some(s) = contains {
            out.push(Filter::Pred(field, Op::Contains(s)));
        }
        if let Some(s) = starts_with {
            out.push(Filter::Pred(field, Op::StartsWith(s)));
        }
        Ok(())
    }
}

impl DateTimeFilter {
    fn add(self, out: &mut Vec<Filter>, field: Field, name: &str) -> Result<()> {
        cmp_of!(self).add(out, field, epoch(name))
    }
}

/// The longest text a `where` compares.
pub const MAX_FILTER_TEXT: usize = 1_000;

/// A `where` over a bound: BAD_USER_INPUT naming the field, with the bound and the
/// size found as `extensions.limit` / `found`.
pub fn too_large(message: String, found: usize, limit: usize) -> async_graphql::Error {
    use async_graphql::ErrorExtensions;
    bad_input("where", message).extend_with(|_, e| {
        e.set("limit", limit);
        e.set("found", found);
    })
}

/// Whether any text in the filter holds a NUL (PostgreSQL refuses those outright).
fn has_nul(f: &Filter) -> bool {
    let text = |s: &Scalar| matches!(s, Scalar::Str(t) if t.contains('\0'));
    match f {
        Filter::And(fs) | Filter::Or(fs) => fs.iter().any(has_nul),
        Filter::Not(f) => has_nul(f),
        Filter::Pred(_, op) => match op {
            Op::Eq(v) | Op::Ne(v) | Op::Lt(v) | Op::Le(v) | Op::Gt(v) | Op::Ge(v) => text(v),
            Op::In(vs) | Op::NotIn(vs) => vs.iter().any(text),
            Op::Contains(t) | Op::StartsWith(t) => t.contains('\0'),
            Op::IsNull(_) => false,
        },
    }
}

/// What one condition of a `where` adds to a query's complexity: each is a term the
/// database evaluates for every candidate row.
pub const CONDITION_COST: usize = 10;

impl BuildsetFilter {
    /// This filter's share of a query's complexity: [`CONDITION_COST`] per condition
    /// and 1 per compared value. Input that does not convert costs nothing here; the
    /// resolver refuses it with its field named.
    pub fn cost(filter: &Option<Self>) -> usize {
        match filter.clone().map(Self::into_filter) {
            Some(Ok(f)) => {
                let (conditions, values) = f.size();
                conditions
                    .saturating_mul(CONDITION_COST)
                    .saturating_add(values)
            }
            _ => 0,
        }
    }

    /// The store's filter tree for this input, within the size bounds: at most
    /// `max_conditions` conditions (each a term of one SQL expression, whose depth
    /// databases bound: SQLite at 1000) and `max_values` compared values (each a
    /// bind parameter, which databases bound too: SQLite at 32766).
    pub fn into_bounded_filter(self, max_conditions: usize, max_values: usize) -> Result<Filter> {
        let f = self.into_filter()?;
        // The filterable text columns hold at most 512 characters; a longer text can
        // match nothing, and SQLite refuses a LIKE pattern over 50,000 bytes.
        if let Some(t) = f
            .texts()
            .into_iter()
            .find(|t| t.chars().count() > MAX_FILTER_TEXT)
        {
            return Err(bad_input(
                "where",
                format!(
                    "`where` compares a text of {} characters; at most {MAX_FILTER_TEXT} are allowed",
                    t.chars().count()
                ),
            ));
        }
        if has_nul(&f) {
            return Err(bad_input(
                "where",
                "`where` compares a text with a NUL character, which no column can hold",
            ));
        }
        let (conditions, values) = f.size();
        if conditions > max_conditions {
            return Err(too_large(
                format!("`where` has {conditions} conditions; at most {max_conditions} are allowed (--max-where-conditions)"),
                conditions,
                max_conditions,
            ));
        }
        if values > max_values {
            return Err(too_large(
                format!("`where` compares {values} values; at most {max_values} are allowed (--max-where-values)"),
                values,
                max_values,
            ));
        }
        Ok(f)
    }

    /// The store's filter tree for this input.
    fn into_filter(self) -> Result<Filter> {
        let mut all = Vec::new();
        let f = self;
        for (filter, field) in [
            (f.bsid, Field::Bsid),
            (f.results, Field::Results),
            (f.parent_buildid, Field::ParentBuildid),
            (f.rebuilt_buildid, Field::RebuiltBuildid),
            (f.builderid, Field::Builderid),
        ] {
            if let Some(x) = filter {
                x.add(&mut all, field)?;
            }
        }
        for (filter, field) in [
            (f.reason, Field::Reason),
            (f.external_idstring, Field::ExternalIdstring),
            (f.branch, Field::Branch),
            (f.repository, Field::Repository),
            (f.project, Field::Project),
            (f.codebase, Field::Codebase),
        ] {
            if let Some(x) = filter {
                x.add(&mut all, field)?;
            }
        }
        for (filter, field, name) in [
            (f.submitted_at, Field::SubmittedAt, "where.submittedAt"),
            (f.complete_at, Field::CompleteAt, "where.completeAt"),
        ] {
            if let Some(x) = filter {
                x.add(&mut all, field, name)?;
            }
        }
        if let Some(fs) = f.and {
            all.push(Filter::And(
                fs.into_iter()
                    .map(Self::into_filter)
                    .collect::<Result<_>>()?,
            ));
        }
        if let Some(fs) = f.or {
            all.push(Filter::Or(
                fs.into_iter()
                    .map(Self::into_filter)
                    .collect::<Result<_>>()?,
            ));
        }
        if let Some(n) = f.not {
            all.push(Filter::Not(Box::new(n.into_filter()?)));
        }
        Ok(Filter::And(all))
    }
}

/// A column to order buildsets by.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BuildsetOrderField {
    /// The buildset id (submission order).
    Bsid,
    /// When it was submitted.
    SubmittedAt,
    /// When it completed (null while incomplete).
    CompleteAt,
    /// The result code (null while incomplete).
    Results,
    /// The reason text.
    Reason,
}

/// Sort direction. Nulls sort last ascending and first descending.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum OrderDirection {
    /// Smallest first; nulls last.
    Asc,
    /// Largest first; nulls first.
    Desc,
}

/// One sort key; bsid always breaks ties last, so cursors are stable.
#[derive(InputObject, Clone, Copy)]
pub struct BuildsetOrder {
    /// The column.
    field: BuildsetOrderField,
    /// The direction.
    #[graphql(default_with = "OrderDirection::Asc")]
    direction: OrderDirection,
}

impl BuildsetOrder {
    pub fn key(self) -> OrderKey {
        OrderKey {
            field: match self.field {
                BuildsetOrderField::Bsid => OrderField::Bsid,
                BuildsetOrderField::SubmittedAt => OrderField::SubmittedAt,
                BuildsetOrderField::CompleteAt => OrderField::CompleteAt,
                BuildsetOrderField::Results => OrderField::Results,
                BuildsetOrderField::Reason => OrderField::Reason,
            },
            descending: self.direction == OrderDirection::Desc,
        }
    }
}

/// A page of buildsets (Relay cursor connection).
pub struct BuildsetConnection {
    pub edges: Vec<BuildsetEdge>,
    pub page_info: PageInfo,
    /// What `totalCount` counts, evaluated only when asked for.
    pub complete: Option<bool>,
    pub filter: Option<Filter>,
}

/// A page of buildsets (Relay cursor connection).
#[Object]
impl BuildsetConnection {
    /// The buildsets of this page with their cursors.
    async fn edges(&self) -> &[BuildsetEdge] {
        &self.edges
    }
    /// The buildsets of this page.
    async fn nodes(&self) -> Each<'_, BuildsetView> {
        Each::Refs(self.edges.iter().map(|e| &e.node).collect())
    }
    /// Where this page is.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }
    /// How many buildsets match the filter, over all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let n = app(ctx)?
            .store
            .count(self.complete, self.filter.as_ref(), super::operation(ctx))
            .await
            .gql(ctx)?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}

/// A buildset and its cursor.
#[derive(SimpleObject)]
pub struct BuildsetEdge {
    /// An opaque cursor for `after` / `before`.
    pub cursor: String,
    /// The buildset.
    pub node: BuildsetView,
}

/// Relay page information.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether more buildsets follow this page.
    pub has_next_page: bool,
    /// Whether buildsets precede this page.
    pub has_previous_page: bool,
    /// The cursor of the first buildset of the page.
    pub start_cursor: Option<String>,
    /// The cursor of the last buildset of the page.
    pub end_cursor: Option<String>,
}

/// Checks a page-size argument against the bound.
pub fn page_size(arg: &str, value: Option<i32>, max: u64) -> Result<Option<u64>> {
    match value {
        None => Ok(None),
        Some(v) if v < 0 => Err(bad_input(arg, format!("`{arg}` cannot be negative"))),
        Some(v) if v as u64 > max => Err(bad_input(arg, format!("`{arg}` is at most {max}"))),
        Some(v) => Ok(Some(v as u64)),
    }
}
