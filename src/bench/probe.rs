//! The server's own figures for `switchboard bench`: CPU time, memory and
//! records committed, read from its Prometheus endpoint
//! (`process_cpu_seconds_total`, which the process collector reads from
//! `/proc/self/stat`, `process_resident_memory_bytes` and the store writer's
//! `switchboard_store_batch_records`); when the server runs in this process,
//! its peak memory is the kernel's high-water mark in `/proc/self/status`
//! and its CPU time is read from `/proc/self/stat` to the clock tick, where
//! the process collector counts whole seconds.

use super::BenchError;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often a running server's memory is sampled for its peak.
const RSS_SAMPLE: Duration = Duration::from_millis(250);

/// Longest one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the server's figures come from.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The metrics endpoint's address and path, when there is one.
    metrics: Option<(String, String)>,
    /// True when the server runs in this process, so `/proc/self` is its.
    in_process: bool,
}

/// The server's cumulative figures at one moment; absent when unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// CPU time used, user and system, seconds.
    pub cpu_secs: Option<f64>,
    /// Resident memory now, bytes.
    pub rss_bytes: Option<f64>,
    /// Records the store writer committed.
    pub records: Option<f64>,
    /// Batches (transactions) the store writer committed.
    pub batches: Option<f64>,
}

impl Probe {
    /// A probe of the endpoint at `metrics_url` (`http://host:port/path`), if
    /// any; `in_process` when the server is this process.
    pub fn new(metrics_url: Option<&str>, in_process: bool) -> Result<Self, BenchError> {
        let metrics = match metrics_url {
            Some(url) => {
                let rest = url.strip_prefix("http://").ok_or_else(|| {
                    BenchError::Input(format!(
                        "metrics_url: only http:// URLs are supported, got {url}"
                    ))
                })?;
                let (host, path) = match rest.split_once('/') {
                    Some((host, path)) => (host.to_owned(), format!("/{path}")),
                    None => (rest.to_owned(), "/metrics".to_owned()),
                };
                if host.is_empty() {
                    return Err(BenchError::Input(format!("metrics_url: no host in {url}")));
                }
                Some((host, path))
            }
            None => None,
        };
        Ok(Self {
            metrics,
            in_process,
        })
    }

    /// The server's figures now.
    pub async fn sample(&self) -> Result<Sample, BenchError> {
        let Some((host, path)) = &self.metrics else {
            return Ok(Sample::default());
        };
        let body = tokio::time::timeout(SCRAPE_TIMEOUT, scrape(host, path))
            .await
            .map_err(|_| {
                BenchError::Failed(format!("metrics_url: {host}{path} did not answer"))
            })??;
        let mut sample = parse(&body);
        if self.in_process {
            sample.cpu_secs = own_cpu_secs().or(sample.cpu_secs);
        }
        Ok(sample)
    }

    /// The server's peak resident memory until `stop` fires: the kernel's
    /// high-water mark in process, else the highest sampled value.
    pub async fn peak_rss(self, mut stop: tokio::sync::oneshot::Receiver<()>) -> Option<f64> {
        if self.in_process {
            let _ = stop.await;
            return high_water_mark();
        }
        self.metrics.as_ref()?;
        let mut peak: Option<f64> = None;
        let mut ticks = tokio::time::interval(RSS_SAMPLE);
        loop {
            tokio::select! {
                _ = &mut stop => return peak,
                _ = ticks.tick() => {}
            }
            if let Ok(Sample {
                rss_bytes: Some(rss),
                ..
            }) = self.sample().await
            {
                peak = Some(peak.map_or(rss, |peak: f64| peak.max(rss)));
            }
        }
    }
}

/// GETs `path` from `host` over HTTP/1.0 and returns the body.
async fn scrape(host: &str, path: &str) -> Result<String, BenchError> {
    let failed = |error: std::io::Error| {
        BenchError::Failed(format!("metrics_url: cannot read {host}{path}: {error}"))
    };
    let address: SocketAddr = tokio::net::lookup_host(host)
        .await
        .map_err(failed)?
        .next()
        .ok_or_else(|| BenchError::Failed(format!("metrics_url: {host} has no address")))?;
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(failed)?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(failed)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.map_err(failed)?;
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        return Err(BenchError::Failed(format!(
            "metrics_url: {host}{path} answered without a blank line after its head"
        )));
    };
    if head.split(' ').nth(1) != Some("200") {
        let status = head.lines().next().unwrap_or_default();
        return Err(BenchError::Failed(format!(
            "metrics_url: {host}{path} answered {status}"
        )));
    }
    Ok(body.to_owned())
}

/// Picks the figures out of the Prometheus text format.
fn parse(body: &str) -> Sample {
    let mut sample = Sample::default();
    for line in body.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        match name {
            "process_cpu_seconds_total" => sample.cpu_secs = Some(value),
            "process_resident_memory_bytes" => sample.rss_bytes = Some(value),
            "switchboard_store_batch_records_sum" => sample.records = Some(value),
            "switchboard_store_batch_records_count" => sample.batches = Some(value),
            _ => {}
        }
    }
    sample
}

/// How far a cumulative figure moved between two readings, when both exist.
pub fn between(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some(after? - before?)
}

/// This process's CPU time, user and system, seconds, to the clock tick.
pub fn own_cpu_secs() -> Option<f64> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    Some((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// This process's peak resident memory (`VmHWM`), bytes.
fn high_water_mark() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmHWM:") {
            let kib: f64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            return Some(kib * 1024.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_read_from_the_text_format() {
        let body = "# HELP process_cpu_seconds_total x\n\
                    process_cpu_seconds_total 12.5\n\
                    process_resident_memory_bytes 1.5e7\n\
                    switchboard_store_batch_records_bucket{le=\"1\"} 3\n\
                    switchboard_store_batch_records_sum 420\n\
                    switchboard_store_batch_records_count 7\n";
        let sample = parse(body);
        assert_eq!(sample.cpu_secs, Some(12.5));
        assert_eq!(sample.rss_bytes, Some(1.5e7));
        assert_eq!(sample.records, Some(420.0));
        assert_eq!(sample.batches, Some(7.0));
    }

    #[test]
    fn only_plain_http_metrics_urls_are_taken() {
        let error = Probe::new(Some("https://example/metrics"), false).err();
        assert!(
            matches!(&error, Some(BenchError::Input(message)) if message.starts_with("metrics_url:")),
            "{error:?}"
        );
        let probe = Probe::new(Some("http://127.0.0.1:9464"), false).expect("a valid url");
        assert_eq!(
            probe.metrics,
            Some(("127.0.0.1:9464".to_owned(), "/metrics".to_owned()))
        );
    }

    #[test]
    fn this_process_cpu_time_moves_in_ticks_not_whole_seconds() {
        let start = own_cpu_secs().expect("linux reports CPU time");
        let mut now = start;
        // Reading /proc spends CPU time, so this ends at the next tick.
        while now == start {
            now = own_cpu_secs().expect("linux reports CPU time");
        }
        assert!(now - start < 0.5, "{start} s, then {now} s");
    }

    #[test]
    fn this_process_has_a_high_water_mark() {
        let peak = high_water_mark().expect("linux reports VmHWM");
        assert!(peak > 0.0);
    }
}
