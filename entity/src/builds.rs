use sea_orm::entity::prelude::*;

/// Buildbot's `builds` table, as far as this server reads it. It exists only in a
/// database that a Buildbot master created (attached mode); this server never writes it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "builds")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub number: i32,
    pub builderid: i32,
    pub buildrequestid: i32,
    pub started_at: i32,
    pub complete_at: Option<i32>,
    #[sea_orm(column_type = "Text")]
    pub state_string: String,
    pub results: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
