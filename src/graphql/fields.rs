//! Each output type's scalar fields, declared once: the `output_type!` macro makes
//! from one declaration (name, type, doc, value) both the field's resolver in the
//! type's `#[Object]` and its arm in the plain path's table (`fast::Plain`), so the
//! two cannot drift; `tests/blackbox/test_fast.py` compares both paths on every
//! field. Fields with arguments, a context or relations are written as resolvers in
//! the declaration's `fields` part and answered by them on both paths.

use async_graphql::{Json, ScalarType, Value, ID};

use super::scalars::DateTime;

/// A scalar field's value as the plain path answers it: exactly what the value's
/// `OutputType` answers.
pub trait ToPlain {
    fn to_plain(self) -> Value;
}

impl ToPlain for i32 {
    fn to_plain(self) -> Value {
        Value::from(self)
    }
}

impl ToPlain for bool {
    fn to_plain(self) -> Value {
        Value::Boolean(self)
    }
}

impl ToPlain for &str {
    fn to_plain(self) -> Value {
        Value::String(self.to_owned())
    }
}

impl ToPlain for ID {
    fn to_plain(self) -> Value {
        Value::String(self.0)
    }
}

impl ToPlain for DateTime {
    fn to_plain(self) -> Value {
        ScalarType::to_value(&self)
    }
}

impl ToPlain for Json<&serde_json::Value> {
    fn to_plain(self) -> Value {
        async_graphql::to_value(self.0).unwrap_or_default()
    }
}

impl<T: ToPlain> ToPlain for Option<T> {
    fn to_plain(self) -> Value {
        self.map_or(Value::Null, ToPlain::to_plain)
    }
}

/// An output type: its `#[Object]` with the scalar fields declared once (each
/// `"graphqlName" rust_name: Type = |self_binding| value;`), its other fields as
/// resolvers, and its `fast::Plain` table. The `#[Object(…)]` attribute, `#`
/// included, is passed through as the caller's own tokens: the resolvers'
/// complexity expressions name the `child_complexity` it defines, and macro
/// hygiene hides that name from them if any token of the attribute is the
/// macro's.
macro_rules! output_type {
    (
        $hash:tt $object:tt
        $(#[$doc:meta])*
        impl $ty:ty;
        scalars {
            $(
                $(#[$fdoc:meta])*
                $key:literal $field:ident: $ret:ty = |$s:ident| $get:expr;
            )*
        }
        fields {
            $($rest:tt)*
        }
    ) => {
        $hash $object
        $(#[$doc])*
        impl $ty {
            $(
                $(#[$fdoc])*
                #[graphql(name = $key)]
                async fn $field(&self) -> $ret {
                    let $s = self;
                    $get
                }
            )*
            $($rest)*
        }

        impl $crate::graphql::fast::Plain for $ty {
            fn scalar(&self, name: &str) -> Option<async_graphql::Value> {
                match name {
                    $(
                        $key => {
                            let $s = self;
                            let value: $ret = $get;
                            Some($crate::graphql::fields::ToPlain::to_plain(value))
                        }
                    )*
                    _ => None,
                }
            }
        }
    };
}

pub(crate) use output_type;
