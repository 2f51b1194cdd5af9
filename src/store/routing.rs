//! Where a read goes: the primary, or a streaming replica that is in (see
//! [`super::replica`]); and what a write leaves for read-your-writes.

use sea_orm::DatabaseConnection;

use super::{db, replica, tag, PrepareError, Store, Timeouts};

impl Store {
    /// Sends reads to the PostgreSQL streaming replicas at `urls` while they keep
    /// within `max_lag` of the primary (see [`replica`]); writes stay on the primary.
    /// Their pools open lazily: one that is down now is only out until it answers.
    pub async fn with_replicas(
        self,
        urls: &[String],
        max_lag: std::time::Duration,
        timeouts: Timeouts,
    ) -> Result<Store, PrepareError> {
        if urls.is_empty() {
            return Ok(self);
        }
        if self.db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Err(PrepareError::Db(sea_orm::DbErr::Custom(
                "--read-database-url needs a PostgreSQL primary (--database-url postgres://…): replicas of SQLite or MySQL/MariaDB are not supported".into(),
            )));
        }
        if let Some(bad) = urls
            .iter()
            .find(|u| !u.starts_with("postgres://") && !u.starts_with("postgresql://"))
        {
            return Err(PrepareError::Db(sea_orm::DbErr::Custom(format!(
                "--read-database-url {}: a replica is a PostgreSQL URL (postgres://USER@HOST:PORT/DB)",
                db::url_host(bad)
            ))));
        }
        let replicas = replica::Replicas::connect(urls, max_lag, timeouts).await?;
        Ok(Store {
            replicas: Some(std::sync::Arc::new(replicas)),
            ..self
        })
    }

    /// The replicas, if reads go to any.
    pub fn replicas(&self) -> Option<&replica::Replicas> {
        self.replicas.as_deref()
    }

    /// Operations that read from the primary although there are replicas.
    pub fn primary_reads(&self) -> u64 {
        self.primary_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Checks the replicas now: their lag, who is in.
    pub async fn check_replicas(&self) {
        if let Some(r) = &self.replicas {
            r.check(&self.db).await;
        }
    }

    /// Checks the replicas for as long as the server runs (returns at once without).
    pub async fn watch_replicas(&self) {
        let Some(r) = &self.replicas else { return };
        loop {
            tokio::time::sleep(r.interval()).await;
            r.check(&self.db).await;
        }
    }

    /// The primary's position now, when reads go to replicas: a read that must see
    /// every write committed so far asks for a replica that has replayed it.
    pub async fn write_position(&self) -> Option<replica::Lsn> {
        self.replicas.as_ref()?;
        match replica::primary_position(&self.db).await {
            Ok(at) => at,
            Err(e) => {
                tracing::debug!(error = %e, "could not read the primary's position");
                None
            }
        }
    }

    /// After `op` wrote, with replicas: where the primary was, for the client to
    /// read its write from a replica that has it.
    pub(super) async fn note_write(&self, op: &tag::Operation) {
        if let Some(at) = self.write_position().await {
            op.wrote_at(at);
        }
    }

    /// Where `op` reads: chosen at its first read, then kept, so that all its
    /// statements see one database.
    pub(super) async fn target(&self, op: &tag::Operation) -> replica::Target {
        use replica::{ReadFrom, Target};
        let Some(reps) = &self.replicas else {
            return Target::Primary;
        };
        *op.target
            .get_or_init(|| async {
                let chosen = match op.reads_from() {
                    ReadFrom::Primary => None,
                    ReadFrom::Replica => reps.any(),
                    ReadFrom::After(at) => reps.after(at, std::time::Duration::ZERO).await,
                    ReadFrom::Awaiting(at) => {
                        let wait = reps.max_lag().min(std::time::Duration::from_millis(250));
                        reps.after(at, wait).await
                    }
                };
                match chosen.and_then(|i| Some((i, reps.get(i)?))) {
                    Some((i, r)) => {
                        r.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        Target::Replica(i)
                    }
                    None => {
                        self.primary_reads
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        Target::Primary
                    }
                }
            })
            .await
    }

    /// `op`'s connection for reads: its replica (the primary once that fails), or
    /// the primary.
    pub(super) async fn routed<'a>(
        &'a self,
        op: &'a tag::Operation,
        tagged: bool,
    ) -> tag::Tagged<'a, DatabaseConnection> {
        let on = |db: &'a DatabaseConnection| {
            if tagged {
                tag::Tagged::on(db, op)
            } else {
                tag::Tagged::off(db, op)
            }
        };
        match self.target(op).await {
            replica::Target::Replica(i) => match self.replicas.as_deref().and_then(|r| r.get(i)) {
                Some(r) => on(&r.db).on_replica(r, &self.db),
                None => on(&self.db),
            },
            replica::Target::Primary => on(&self.db),
        }
    }
}
