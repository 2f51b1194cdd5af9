//! Objects answered without a future per field.
//!
//! async-graphql resolves every field of every object as a boxed future, run
//! concurrently and merged into a map; on a page of a hundred buildsets with their
//! stamps that machinery was about a fifth of the server's CPU (4.2-4.8 ms a page
//! without it, 5.2-6.0 ms with it, same binary and data). Everything a
//! page shows is loaded before its objects are resolved (`plan`, `store::graph`), so
//! there is nothing to wait for: [`Each`] and [`One`] answer a list or an object
//! field by field in a plain loop, each scalar straight from [`Plain::scalar`], every
//! other field (relations, arguments) through the type's own resolver.
//!
//! Only selections made of plain fields take this path: one with a fragment, a
//! directive or a repeated response key goes through async-graphql's own (which
//! merges and skips as the spec says). `tests/blackbox/test_fast.py` checks that both
//! paths answer every field alike.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::resolve_list;
use async_graphql::{
    ContainerType, ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value,
};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An object whose scalar fields can be read without a context.
pub trait Plain: ContainerType + OutputType + Sync {
    /// The value of the scalar field `name` (selected without arguments), as its
    /// resolver would answer it; `None` for any other field, which its resolver
    /// answers.
    fn scalar(&self, name: &str) -> Option<Value>;
}

/// Whether a selection set can take the plain path: fields only, no directive, each
/// response key once.
fn plain_selection(set: &SelectionSet) -> bool {
    let mut keys: Vec<&Name> = Vec::with_capacity(set.items.len());
    for item in &set.items {
        let Selection::Field(field) = &item.node else {
            return false;
        };
        if !field.node.directives.is_empty() {
            return false;
        }
        let key = &field.node.response_key().node;
        if keys.contains(&key) {
            return false;
        }
        keys.push(key);
    }
    true
}

/// One object of a plain selection, in the selection's order. A resolver's error is
/// recorded and its field left out, as async-graphql does.
async fn object<T: Plain>(obj: &T, ctx: &ContextSelectionSet<'_>) -> Value {
    let items = &ctx.item.node.items;
    let mut map = async_graphql::indexmap::IndexMap::with_capacity(items.len());
    for item in items {
        let Selection::Field(field) = &item.node else {
            continue;
        };
        let name = field.node.name.node.as_str();
        let value = if name == "__typename" {
            Value::String(obj.introspection_type_name().into_owned())
        } else if let Some(v) = leaf(&field.node).then(|| obj.scalar(name)).flatten() {
            v
        } else {
            let ctx_field = ctx.with_field(field);
            // Boxed: a relation's objects come back here (a build request's buildset).
            let resolved: BoxFuture<'_, ServerResult<Option<Value>>> =
                Box::pin(obj.resolve_field(&ctx_field));
            match resolved.await {
                Ok(v) => v.unwrap_or_default(),
                Err(e) => {
                    ctx.add_error(e);
                    continue;
                }
            }
        };
        map.insert(field.node.response_key().node.clone(), value);
    }
    if map.is_empty() {
        Value::Null
    } else {
        Value::Object(map)
    }
}

fn leaf(field: &Field) -> bool {
    field.arguments.is_empty() && field.selection_set.node.items.is_empty()
}

/// A list of objects answered on the plain path when its selection allows.
pub enum Each<'a, T> {
    Slice(&'a [T]),
    Refs(Vec<&'a T>),
    Owned(Vec<T>),
}

impl<T> Each<'_, T> {
    fn len(&self) -> usize {
        match self {
            Each::Slice(s) => s.len(),
            Each::Refs(v) => v.len(),
            Each::Owned(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> Option<&T> {
        match self {
            Each::Slice(s) => s.get(i),
            Each::Refs(v) => v.get(i).copied(),
            Each::Owned(v) => v.get(i),
        }
    }
}

impl<'a, T: Plain + 'a> OutputType for Each<'a, T> {
    fn type_name() -> Cow<'static, str> {
        <&'a [T] as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <&'a [T] as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <&'a [T] as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let n = self.len();
        if !plain_selection(&ctx.item.node) {
            let items = (0..n).filter_map(|i| self.get(i));
            return resolve_list(ctx, field, items, Some(n)).await;
        }
        let mut items = Vec::with_capacity(n);
        for (i, obj) in (0..n).filter_map(|i| self.get(i)).enumerate() {
            items.push(object(obj, &ctx.with_index(i)).await);
        }
        Ok(Value::List(items))
    }
}

/// One object answered on the plain path when its selection allows.
pub enum One<'a, T> {
    Ref(&'a T),
    Owned(T),
}

impl<T> One<'_, T> {
    fn get(&self) -> &T {
        match self {
            One::Ref(r) => r,
            One::Owned(o) => o,
        }
    }
}

impl<'a, T: Plain + 'a> OutputType for One<'a, T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.get().introspection_type_name()
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        if !plain_selection(&ctx.item.node) {
            return OutputType::resolve(self.get(), ctx, field).await;
        }
        Ok(object(self.get(), ctx).await)
    }
}
