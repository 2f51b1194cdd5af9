use sea_orm::entity::prelude::*;

/// One property of a buildset. Buildbot's table has no primary key; the pair
/// (buildsetid, property_name) identifies a row for SeaORM's purposes.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "buildset_properties")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub buildsetid: i32,
    #[sea_orm(
        primary_key,
        auto_increment = false,
        column_type = "String(StringLen::N(256))"
    )]
    pub property_name: String,
    /// JSON text of the array `[value, source]`.
    #[sea_orm(column_type = "Text")]
    pub property_value: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::buildsets::Entity",
        from = "Column::Buildsetid",
        to = "super::buildsets::Column::Id",
        on_delete = "Cascade"
    )]
    Buildset,
}

impl Related<super::buildsets::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Buildset.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
