//! The serialisation floor: what writing scenario b's answer costs by itself, timed
//! in this process on the answer's own bytes, next to the server's CPU per page.

use super::*;

/// Milliseconds per answer of each way of writing the same bytes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Floor {
    /// The answer's size.
    pub(crate) bytes: usize,
    /// `serde_json::to_vec` of the answer held as async-graphql's `ConstValue`: what
    /// the server does last (src/http/reply.rs), with every value already built.
    pub(crate) const_to_vec_ms: f64,
    /// `serde_json::to_vec` of the answer as a `serde_json::Value`.
    pub(crate) value_to_vec_ms: f64,
    /// `serde_json::from_slice::<Value>` then `to_vec`: parsing the bytes and writing
    /// them back.
    pub(crate) parse_and_write_ms: f64,
    /// Whether this tool was built with optimisations (a debug build's figures are
    /// no floor).
    pub(crate) release: bool,
}

/// The fastest of 5 batches of `f`, in milliseconds per call; a batch is enough calls
/// for about 100 ms.
fn time_per_call(mut f: impl FnMut() -> usize) -> f64 {
    let t = Instant::now();
    let mut sink = f();
    let once = t.elapsed().as_secs_f64().max(1e-6);
    let n = ((0.1 / once) as usize).clamp(1, 10_000);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            sink = sink.wrapping_add(std::hint::black_box(f()));
        }
        best = best.min(t.elapsed().as_secs_f64() * 1000.0 / n as f64);
    }
    std::hint::black_box(sink);
    best
}

/// Fetches one answer of scenario b from the server and times writing it.
pub(crate) async fn serialisation_floor(
    client: &reqwest::Client,
    url: &str,
    data: &Data,
) -> Result<Floor, String> {
    let body = read_body(&our_query(Scenario::B), Scenario::B, data, 0);
    let bytes = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if value.get("errors").is_some() || value["data"]["buildsets"]["nodes"].as_array().is_none() {
        return Err(format!(
            "b's answer: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        ));
    }
    let as_const =
        async_graphql_value::ConstValue::from_json(value.clone()).map_err(|e| e.to_string())?;
    Ok(Floor {
        bytes: bytes.len(),
        const_to_vec_ms: time_per_call(|| serde_json::to_vec(&as_const).map_or(0, |v| v.len())),
        value_to_vec_ms: time_per_call(|| serde_json::to_vec(&value).map_or(0, |v| v.len())),
        parse_and_write_ms: time_per_call(|| {
            serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| serde_json::to_vec(&v).ok())
                .map_or(0, |v| v.len())
        }),
        release: !cfg!(debug_assertions),
    })
}
