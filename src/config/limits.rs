//! The bounds on what one request may ask for: one struct, one set of defaults,
//! flattened into the command line with its environment names, and read as it is by
//! the HTTP body, the WebSocket, the door's checks, the complexity rules and the
//! resolvers.

use clap::builder::RangedU64ValueParser;

/// Where `--max-page-size` stops: the complexity rules cost a page by its size up
/// to this, so that a larger configured page is costed as what it loads.
pub const MAX_PAGE_CEILING: u64 = 10_000;

/// The defaults, once.
pub const DEFAULTS: Limits = Limits {
    default_page: 100,
    max_page: 1000,
    max_depth: 16,
    max_complexity: 20_000,
    max_selections: 10_000,
    max_root_fields: 50,
    max_nesting: 128,
    max_tokens: 50_000,
    max_subscription_selections: 500,
    max_value_nesting: 64,
    max_where_conditions: 100,
    max_where_values: 10_000,
    max_subscription_where_values: 1_000,
    max_input_list: 1_000,
    max_response_bytes: 32 << 20,
    max_body_bytes: 1 << 20,
};

fn ranged(min: u64, max: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::<usize>::new().range(min..=max)
}

#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Page size when neither `first` nor `last` is given.
    #[arg(skip = DEFAULTS.default_page)]
    pub default_page: u64,

    /// Largest `first` / `last` / `recentBuildsets(count)`.
    #[arg(long = "max-page-size", env = "MAX_PAGE_SIZE", value_name = "MAX_PAGE_SIZE", default_value_t = DEFAULTS.max_page,
          value_parser = clap::value_parser!(u64).range(100..=MAX_PAGE_CEILING), global = true)]
    pub max_page: u64,

    /// Deepest query nesting accepted.
    #[arg(long, env = "MAX_DEPTH", default_value_t = DEFAULTS.max_depth, value_parser = ranged(2, 64), global = true)]
    pub max_depth: usize,

    /// Largest query complexity accepted (list fields weigh by their page size).
    #[arg(long, env = "MAX_COMPLEXITY", default_value_t = DEFAULTS.max_complexity, value_parser = ranged(1, 1 << 40), global = true)]
    pub max_complexity: usize,

    /// Most fields one operation selects once its fragments are expanded (aliases count); counting stops at the bound, so a fragment bomb costs no more.
    #[arg(long, env = "MAX_SELECTIONS", default_value_t = DEFAULTS.max_selections, value_parser = ranged(1, 100_000), global = true)]
    pub max_selections: usize,

    /// Most root fields in one operation (aliases count).
    #[arg(long, env = "MAX_ROOT_FIELDS", default_value_t = DEFAULTS.max_root_fields, value_parser = ranged(1, 1_000), global = true)]
    pub max_root_fields: usize,

    /// Deepest bracket nesting in a document's text, checked before it is parsed (the parser recurses per level).
    #[arg(long, env = "MAX_NESTING", default_value_t = DEFAULTS.max_nesting, value_parser = ranged(1, 256), global = true)]
    pub max_nesting: usize,

    /// Most lexical tokens in a document (names, numbers, strings, punctuators), counted before it is parsed (parsing allocates per token).
    #[arg(long, env = "MAX_TOKENS", default_value_t = DEFAULTS.max_tokens, value_parser = ranged(100, 1_000_000), global = true)]
    pub max_tokens: usize,

    /// Most fields one subscription selects once its fragments are expanded (aliases
    /// count): every event is answered once for each distinct subscription.
    #[arg(long, env = "MAX_SUBSCRIPTION_SELECTIONS", default_value_t = DEFAULTS.max_subscription_selections, value_parser = ranged(1, 100_000), global = true)]
    pub max_subscription_selections: usize,

    /// Deepest nesting of lists and objects in one argument or variable (a property value included: deeper could not be read back).
    #[arg(long, env = "MAX_VALUE_NESTING", default_value_t = DEFAULTS.max_value_nesting, value_parser = ranged(1, 100), global = true)]
    pub max_value_nesting: usize,

    /// Most conditions in one `where` (each is a term of one SQL expression).
    #[arg(long, env = "MAX_WHERE_CONDITIONS", default_value_t = DEFAULTS.max_where_conditions, value_parser = ranged(1, 500), global = true)]
    pub max_where_conditions: usize,

    /// Most values one `where` compares (each is a bind parameter, which databases bound).
    #[arg(long, env = "MAX_WHERE_VALUES", default_value_t = DEFAULTS.max_where_values, value_parser = ranged(1, 10_000), global = true)]
    pub max_where_values: usize,

    /// Most values one subscription's `where` compares (it runs again on every change).
    #[arg(long, env = "MAX_SUBSCRIPTION_WHERE_VALUES", default_value_t = DEFAULTS.max_subscription_where_values, value_parser = ranged(1, 10_000), global = true)]
    pub max_subscription_where_values: usize,

    /// Most entries in each list of one `addBuildset`: sourcestamps, properties, builderids.
    #[arg(long, env = "MAX_INPUT_LIST", default_value_t = DEFAULTS.max_input_list, value_parser = ranged(1, 1_000), global = true)]
    pub max_input_list: usize,

    /// Bytes of property values and patches one operation may read (its answer
    /// holds them); more is QUERY_TOO_COMPLEX. 0: no bound.
    #[arg(long, env = "MAX_RESPONSE_BYTES", default_value_t = DEFAULTS.max_response_bytes, global = true)]
    pub max_response_bytes: u64,

    /// Largest request body, in bytes (larger gets HTTP 413), and largest WebSocket
    /// message (larger closes the socket with 1009).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = DEFAULTS.max_body_bytes, value_parser = ranged(1024, 1 << 30), global = true)]
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        DEFAULTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Only {
        #[command(flatten)]
        limits: Limits,
    }

    #[test]
    fn the_command_line_defaults_are_the_defaults() {
        let parsed = Only::try_parse_from(["x"]).expect("parses").limits;
        assert_eq!(parsed, Limits::default());
    }

    #[test]
    fn each_flag_sets_its_limit() {
        let parsed = Only::try_parse_from([
            "x",
            "--max-page-size",
            "5000",
            "--max-depth",
            "5",
            "--max-body-bytes",
            "2048",
            "--max-tokens",
            "300",
        ])
        .expect("parses")
        .limits;
        assert_eq!(parsed.max_page, 5000);
        assert_eq!(parsed.max_depth, 5);
        assert_eq!(parsed.max_body_bytes, 2048);
        assert_eq!(parsed.max_tokens, 300);
        assert!(Only::try_parse_from(["x", "--max-page-size", "10001"]).is_err());
    }
}
