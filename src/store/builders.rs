//! Find-or-create a builder by name, as Buildbot's `findBuilderId` does (its
//! `name_hash`), storing a given description.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Value};

use super::hash::builder_name_hash;
use super::rows::BuilderRow;
use super::stamps::insert_if_absent;
use super::tag::Operation;
use super::write::in_write_transaction;
use super::{StoreError, StoreResult};

/// Finds a builder by name or creates it; a given description is stored.
pub async fn ensure_builder(
    db: &DatabaseConnection,
    name: &str,
    description: Option<&str>,
) -> StoreResult<BuilderRow> {
    ensure_builder_for(db, name, description, &Operation::unbounded()).await
}

/// [`ensure_builder`], its statements counted for `op`.
pub async fn ensure_builder_for(
    db: &DatabaseConnection,
    name: &str,
    description: Option<&str>,
    op: &Operation,
) -> StoreResult<BuilderRow> {
    if name.is_empty() {
        return Err(StoreError::invalid(
            "name",
            "a builder name cannot be empty",
        ));
    }
    super::types::check_text_bytes("name", Some(name))?;
    super::types::check_text_bytes("description", description)?;
    let name_hash = builder_name_hash(name);
    in_write_transaction!(db, op, |txn| async {
        let txn = &txn;
        let values: Vec<Value> = vec![
            name.into(),
            description.map(str::to_owned).into(),
            name_hash.clone().into(),
        ];
        let id = insert_if_absent(
            txn,
            "builders",
            "name, description, name_hash",
            "name_hash",
            &name_hash,
            values,
        )
        .await?;
        if let Some(description) = description {
            entity::builders::Entity::update_many()
                .col_expr(
                    entity::builders::Column::Description,
                    Expr::value(description),
                )
                .filter(entity::builders::Column::Id.eq(id))
                .exec(txn)
                .await?;
        }
        entity::builders::Entity::find_by_id(id)
            .one(txn)
            .await?
            .map(BuilderRow::from)
            .ok_or_else(|| StoreError::NotFound(format!("builder {id} does not exist")))
    })
}
