//! The values of `--listen` and `--database-url`, read as a user writes them, each
//! refused with what to write instead.

use std::net::SocketAddr;

/// `--listen`: HOST:PORT, the host an IP literal or a name (resolved once, first
/// address).
pub(super) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let example =
        "write HOST:PORT, e.g. 127.0.0.1:8080, 0.0.0.0:8080, [::1]:8080 or localhost:8080";
    if !text.contains(':') {
        return Err(format!("'{text}' has no port: {example}"));
    }
    match text.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("'{text}' resolves to no address: {example}")),
        Err(e) => Err(format!("'{text}' is not an address ({e}): {example}")),
    }
}

/// `--database-url`, with the URLs a Buildbot `master.cfg` holds (SQLAlchemy's
/// `dialect+driver://`) read as the same database: `postgresql+psycopg2://…` as
/// `postgres://…`, `mysql+pymysql://…` and `mariadb://…` as `mysql://…`. SQLite's
/// are left alone: SQLAlchemy's `sqlite:///state.sqlite` is a relative path, which
/// here is written `sqlite://state.sqlite`.
pub(super) fn parse_database_url(text: &str) -> Result<String, String> {
    if text.starts_with("sqlite:") {
        return Ok(text.to_owned()); // sqlite://PATH, sqlite:PATH, sqlite::memory:
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "'{text}' is not a database URL: write sqlite://PATH?mode=rwc, postgres://USER@HOST/DB or mysql://USER@HOST/DB"
        ));
    };
    let (dialect, _driver) = scheme.split_once('+').unwrap_or((scheme, ""));
    let scheme = match dialect.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => "postgres",
        "mysql" | "mariadb" => "mysql",
        _ => {
            return Err(format!(
                "'{scheme}://' is not a database this server speaks: write sqlite://PATH?mode=rwc, postgres://USER@HOST/DB or mysql://USER@HOST/DB (MySQL and MariaDB)"
            ))
        }
    };
    Ok(format!("{scheme}://{rest}"))
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn master_cfg_urls_name_the_same_database() {
        for (given, read) in [
            (
                "postgresql+psycopg2://bb:pw@db/bb",
                "postgres://bb:pw@db/bb",
            ),
            (
                "postgresql://bb@db/bb?sslmode=disable",
                "postgres://bb@db/bb?sslmode=disable",
            ),
            ("mysql+pymysql://root@db:3306/bb", "mysql://root@db:3306/bb"),
            ("mariadb://root@db/bb", "mysql://root@db/bb"),
            ("mysql://root@db/bb", "mysql://root@db/bb"),
            (
                "sqlite://buildsets.db?mode=rwc",
                "sqlite://buildsets.db?mode=rwc",
            ),
        ] {
            assert_eq!(
                super::parse_database_url(given).as_deref(),
                Ok(read),
                "{given}"
            );
        }
        assert_eq!(
            super::parse_database_url("sqlite::memory:").as_deref(),
            Ok("sqlite::memory:")
        );
        for bad in ["oracle://x/y", "sqlite+pysqlite:///x.db", "buildsets.db"] {
            let err = super::parse_database_url(bad).unwrap_err();
            assert!(err.contains("postgres://USER@HOST/DB"), "{bad}: {err}");
        }
    }

    #[test]
    fn listen_takes_names_and_says_what_to_write() {
        assert_eq!(
            super::parse_listen("127.0.0.1:9").unwrap().to_string(),
            "127.0.0.1:9"
        );
        assert!(super::parse_listen("localhost:9")
            .unwrap()
            .ip()
            .is_loopback());
        let err = super::parse_listen("8080").unwrap_err();
        assert!(
            err.contains("no port") && err.contains("127.0.0.1:8080"),
            "{err}"
        );
    }
}
