use sea_orm::entity::prelude::*;

/// Links a buildset to its sourcestamps; `id` order is the order given at add time.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "buildset_sourcestamps")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub buildsetid: i32,
    pub sourcestampid: i32,
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
    #[sea_orm(
        belongs_to = "super::sourcestamps::Entity",
        from = "Column::Sourcestampid",
        to = "super::sourcestamps::Column::Id",
        on_delete = "Cascade"
    )]
    Sourcestamp,
}

impl Related<super::buildsets::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Buildset.def()
    }
}

impl Related<super::sourcestamps::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Sourcestamp.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
