//! Plain data passed into and out of the store.

use serde_json::Value;

use super::{StoreError, StoreResult};

/// A sourcestamp to attach to a new buildset: an existing one, or a description
/// found by its hash or created.
// Inputs live for one request; boxing the description would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum SourceStampRef {
    Id(i32),
    Spec(SourceStampSpec),
}

#[derive(Clone, Debug, Default)]
pub struct SourceStampSpec {
    pub branch: Option<String>,
    pub revision: Option<String>,
    pub repository: String,
    pub codebase: String,
    pub project: String,
    pub patch: Option<NewPatch>,
}

#[derive(Clone, Debug)]
pub struct NewPatch {
    /// The raw patch text; stored base64-encoded.
    pub body: Vec<u8>,
    pub level: i32,
    pub author: String,
    pub comment: String,
    pub subdir: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewProperty {
    pub name: String,
    pub value: Value,
    pub source: String,
}

/// Everything `addBuildset` takes.
#[derive(Clone, Debug, Default)]
pub struct NewBuildset {
    pub sourcestamps: Vec<SourceStampRef>,
    pub reason: Option<String>,
    pub properties: Vec<NewProperty>,
    pub builderids: Vec<i32>,
    pub external_idstring: Option<String>,
    /// Epoch seconds; now when absent.
    pub submitted_at: Option<i32>,
    pub parent_buildid: Option<i32>,
    pub parent_relationship: Option<String>,
    pub rebuilt_buildid: Option<i32>,
    pub waited_for: bool,
    pub priority: i32,
    /// The scheduler it comes from: stored as Buildbot's schedulers store it, the
    /// property `scheduler` with source `Scheduler`.
    pub scheduler: Option<String>,
    /// A key that makes retries safe: stored as `external_idstring`; an add whose key
    /// a buildset submitted in the last [`IDEMPOTENCY_WINDOW`] seconds carries
    /// returns that buildset instead of writing another.
    pub idempotency_key: Option<String>,
}

/// Seconds for which an idempotency key finds the buildset it was first used for.
pub const IDEMPOTENCY_WINDOW: i32 = 24 * 3600;

impl NewBuildset {
    /// The properties as stored: those given, and the scheduler's.
    pub fn stored_properties(&self) -> impl Iterator<Item = NewProperty> + '_ {
        self.properties
            .iter()
            .cloned()
            .chain(self.scheduler.iter().map(|name| NewProperty {
                name: "scheduler".to_owned(),
                value: Value::String(name.clone()),
                source: "Scheduler".to_owned(),
            }))
    }
}

/// What `addBuildset` returns: the buildset id and each builder's build request id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedBuildset {
    pub bsid: i32,
    pub brids: Vec<(i32, i32)>,
    /// False when an idempotency key found the buildset an earlier call wrote.
    pub created: bool,
}

/// A decoded buildset property.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    pub name: String,
    pub value: Value,
    pub source: String,
}

/// The most entries `addBuildset` takes in each of its lists.
pub const MAX_LIST: usize = 1000;

/// Refuses a NUL character, which PostgreSQL cannot store in text (the other
/// backends could, so all refuse it alike rather than differ).
pub(crate) fn check_text(field: &str, value: Option<&str>) -> StoreResult<()> {
    match value {
        Some(v) if v.contains('\0') => Err(StoreError::invalid(
            field,
            format!("{field} contains a NUL character, which cannot be stored"),
        )),
        _ => Ok(()),
    }
}

/// Checks a length limit, counted in characters as the column types count them.
pub(crate) fn check_len(field: &str, value: Option<&str>, max: usize) -> StoreResult<()> {
    check_text(field, value)?;
    match value {
        Some(v) if v.chars().count() > max => Err(StoreError::invalid(
            field,
            format!("{field} is longer than {max} characters"),
        )),
        _ => Ok(()),
    }
}

/// The most bytes a `TEXT` column holds on MySQL/MariaDB (Buildbot's `sa.Text`).
/// Every backend takes the same input, so each refuses more than this alike.
pub const TEXT_BYTES: usize = 65_535;

/// Checks a text bound for a `TEXT` column, counted in bytes as MySQL counts them.
pub(crate) fn check_text_bytes(field: &str, value: Option<&str>) -> StoreResult<()> {
    check_text(field, value)?;
    match value {
        Some(v) if v.len() > TEXT_BYTES => Err(StoreError::invalid(
            field,
            format!(
                "{field} is {} bytes long (UTF-8); at most {TEXT_BYTES} are stored",
                v.len()
            ),
        )),
        _ => Ok(()),
    }
}

/// Which characters the database's text columns can hold. Buildbot creates its
/// MySQL tables in `utf8` (3-byte: the Basic Multilingual Plane only); MySQL would
/// store `?` for anything else, or refuse a comparison with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repertoire {
    /// Every Unicode scalar value (SQLite, PostgreSQL, MySQL's utf8mb4).
    Unicode,
    /// The Basic Multilingual Plane (MySQL's utf8 / utf8mb3), named by its charset.
    Bmp(String),
    /// ASCII only: a charset this program does not map (latin1 and others).
    Ascii(String),
}

impl Repertoire {
    /// Reads the charsets of MySQL columns: the narrowest decides.
    pub fn of_charsets<'a>(charsets: impl IntoIterator<Item = &'a str>) -> Repertoire {
        let mut out = Repertoire::Unicode;
        for c in charsets {
            let c = c.to_ascii_lowercase();
            match c.as_str() {
                "utf8mb4" => {}
                "utf8" | "utf8mb3" => {
                    if out == Repertoire::Unicode {
                        out = Repertoire::Bmp(c);
                    }
                }
                _ => return Repertoire::Ascii(c),
            }
        }
        out
    }

    /// Refuses a text holding a character the columns cannot store, naming `field`.
    pub fn check(&self, field: &str, value: Option<&str>) -> StoreResult<()> {
        let (Some(v), charset) = (value, self.charset()) else {
            return Ok(());
        };
        let fits = |c: char| match self {
            Repertoire::Unicode => true,
            Repertoire::Bmp(_) => u32::from(c) <= 0xFFFF,
            Repertoire::Ascii(_) => c.is_ascii(),
        };
        match v.chars().find(|c| !fits(*c)) {
            Some(c) => Err(StoreError::invalid(
                field,
                format!(
                    "{field} contains {c:?} (U+{:04X}), which this database's {charset} text columns cannot store",
                    u32::from(c)
                ),
            )),
            None => Ok(()),
        }
    }

    fn charset(&self) -> &str {
        match self {
            Repertoire::Unicode => "",
            Repertoire::Bmp(c) | Repertoire::Ascii(c) => c,
        }
    }
}

impl NewBuildset {
    /// Every text stored as given (not as JSON), with the field that names it.
    pub fn texts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = vec![
            ("idempotency_key", self.idempotency_key.as_deref()),
            ("reason", self.reason.as_deref()),
            ("external_idstring", self.external_idstring.as_deref()),
            ("parent_relationship", self.parent_relationship.as_deref()),
        ];
        for p in &self.properties {
            out.push(("properties.name", Some(&p.name)));
        }
        for ss in &self.sourcestamps {
            if let SourceStampRef::Spec(spec) = ss {
                out.extend([
                    ("branch", spec.branch.as_deref()),
                    ("revision", spec.revision.as_deref()),
                    ("codebase", Some(spec.codebase.as_str())),
                    ("repository", Some(spec.repository.as_str())),
                    ("project", Some(spec.project.as_str())),
                ]);
                if let Some(patch) = &spec.patch {
                    out.extend([
                        ("patch.author", Some(patch.author.as_str())),
                        ("patch.comment", Some(patch.comment.as_str())),
                        ("patch.subdir", patch.subdir.as_deref()),
                    ]);
                }
            }
        }
        out
    }

    /// Everything that can be checked without the database, so that nothing is
    /// written for input that cannot be stored.
    pub fn validate(&self) -> StoreResult<()> {
        if self.sourcestamps.is_empty() {
            return Err(StoreError::invalid(
                "sourcestamps",
                "a buildset needs at least one sourcestamp",
            ));
        }
        // Each entry costs bind parameters in one statement; databases bound those
        // (SQLite at 32766), so the lists are bounded well below.
        for (field, len) in [
            ("sourcestamps", self.sourcestamps.len()),
            ("properties", self.properties.len()),
            ("builderids", self.builderids.len()),
        ] {
            if len > MAX_LIST {
                return Err(StoreError::invalid(
                    field,
                    format!("{field} has {len} entries; at most {MAX_LIST} are allowed"),
                ));
            }
        }
        if self.scheduler.is_some() && self.properties.iter().any(|p| p.name == "scheduler") {
            return Err(StoreError::invalid(
                "scheduler",
                "the scheduler is given twice: as `scheduler` and as the property `scheduler`",
            ));
        }
        check_text("scheduler", self.scheduler.as_deref())?;
        if self.idempotency_key.is_some() && self.external_idstring.is_some() {
            return Err(StoreError::invalid(
                "idempotency_key",
                "an idempotency key is stored as the external idstring: give one or the other",
            ));
        }
        check_len("idempotency_key", self.idempotency_key.as_deref(), 256)?;
        check_len("reason", self.reason.as_deref(), 256)?;
        check_len("external_idstring", self.external_idstring.as_deref(), 256)?;
        check_text_bytes("parent_relationship", self.parent_relationship.as_deref())?;
        self.validate_properties()?;
        for (i, b) in self.builderids.iter().enumerate() {
            if self.builderids[..i].contains(b) {
                return Err(StoreError::invalid(
                    "builderids",
                    format!("builder {b} is given twice"),
                ));
            }
        }
        for ss in &self.sourcestamps {
            if let SourceStampRef::Spec(spec) = ss {
                spec.validate()?;
            }
        }
        Ok(())
    }
}

impl NewBuildset {
    /// Each property within a TEXT column as stored, named once.
    fn validate_properties(&self) -> StoreResult<()> {
        for p in self.stored_properties() {
            // Stored as the JSON text of [value, source] in one TEXT column.
            let stored = super::json::encode_property(&p.value, &p.source);
            if stored.len() > TEXT_BYTES {
                return Err(StoreError::invalid(
                    "properties.value",
                    format!(
                        "property {:?} is {} bytes long as stored (the JSON of [value, source]); at most {TEXT_BYTES} are stored",
                        p.name,
                        stored.len()
                    ),
                ));
            }
        }
        for (i, p) in self.properties.iter().enumerate() {
            check_len("properties.name", Some(&p.name), 256)?;
            check_text("properties.source", Some(&p.source))?;
            if self.properties[..i].iter().any(|q| q.name == p.name) {
                return Err(StoreError::invalid(
                    "properties",
                    format!("property {:?} is given twice", p.name),
                ));
            }
        }
        Ok(())
    }
}

impl SourceStampSpec {
    /// The stamp's columns, and its patch's, within what they store.
    fn validate(&self) -> StoreResult<()> {
        check_len("branch", self.branch.as_deref(), 256)?;
        check_len("revision", self.revision.as_deref(), 256)?;
        check_len("codebase", Some(&self.codebase), 256)?;
        check_len("repository", Some(&self.repository), 512)?;
        check_len("project", Some(&self.project), 512)?;
        let Some(patch) = &self.patch else {
            return Ok(());
        };
        // Stored in base64: four bytes for every three.
        let stored = patch.body.len().div_ceil(3) * 4;
        if stored > TEXT_BYTES {
            return Err(StoreError::invalid(
                "patch.body",
                format!(
                    "the patch is {} bytes, {stored} in base64 as stored; at most {TEXT_BYTES} are stored ({} bytes of patch)",
                    patch.body.len(),
                    TEXT_BYTES / 4 * 3
                ),
            ));
        }
        check_text_bytes("patch.author", Some(&patch.author))?;
        check_text_bytes("patch.comment", Some(&patch.comment))?;
        check_text_bytes("patch.subdir", patch.subdir.as_deref())
    }
}
