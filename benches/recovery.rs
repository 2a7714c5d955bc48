//! Recovery benchmark: how long a start takes with 100,000 open work items
//! in the store, from opening the database to a router ready to route
//! (configuration and open items loaded, the engine rebuilt). SQLite always;
//! PostgreSQL too when `SWITCHBOARD_BENCH_POSTGRES_URL` names a database (a
//! fresh schema is made in it, and dropped afterwards).

use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::bench::ceiling::submission;
use switchboard::domain::{Queue, Timestamp};
use switchboard::live::{Live, LiveConfig};
use switchboard::metrics::{self, StoreMetrics};
use switchboard::store::{self, Actor, ScratchSchema};

/// Open work items in the store.
const OPEN_ITEMS: usize = 100_000;

/// Fills an empty store with a queue and [`OPEN_ITEMS`] waiting items.
async fn seed(url: &str) {
    let store = store::connect(url).await.expect("the store opens");
    let by = Actor {
        name: "bench".into(),
        at: Timestamp::from_millis(1),
    };
    store
        .create_queue(&Queue::new("support".into()), &by)
        .await
        .expect("the queue is created");
    let mut records = Vec::with_capacity(10_000);
    for n in 0..OPEN_ITEMS {
        let at = Timestamp::from_millis(1_000 + n as i64);
        records.extend(submission(n, "support", at));
        if records.len() >= 10_000 {
            store.append(&records).await.expect("the batch commits");
            records.clear();
        }
    }
    store.append(&records).await.expect("the batch commits");
    store.close().await;
}

/// One start, timed from opening the store to the router answering with
/// every item recovered (configuration and open items loaded, the engine
/// rebuilt); stopping afterwards is not timed.
async fn recover(url: &str) -> Duration {
    let started = Instant::now();
    let store = store::connect(url).await.expect("the store opens");
    let registry = metrics::registry();
    let observer = Arc::new(StoreMetrics::register(&registry).expect("fresh registry"));
    let (live, tasks) = Live::start(store.clone(), LiveConfig::default(), observer, &registry)
        .await
        .expect("recovery succeeds");
    let open = live.open_interactions().await.expect("the router answers");
    let elapsed = started.elapsed();
    assert_eq!(open.len(), OPEN_ITEMS, "every open item is recovered");
    drop(live);
    tasks.join().await;
    store.close().await;
    elapsed
}

fn recovery(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut targets = vec![(
        "sqlite",
        format!("sqlite://{}", dir.path().join("recovery.db").display()),
    )];
    let postgres = std::env::var("SWITCHBOARD_BENCH_POSTGRES_URL")
        .ok()
        .map(|base| {
            runtime
                .block_on(ScratchSchema::create(&base, "bench"))
                .expect("the PostgreSQL server answers and a schema can be created")
        });
    if let Some(schema) = &postgres {
        targets.push(("postgres", schema.url()));
    }
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    for (name, url) in targets {
        runtime.block_on(seed(&url));
        group.bench_function(format!("{name}_100k_open_items"), |b| {
            b.iter_custom(|starts| {
                let mut total = Duration::ZERO;
                for _ in 0..starts {
                    total += runtime.block_on(recover(&url));
                }
                total
            });
        });
    }
    group.finish();
    if let Some(schema) = postgres {
        runtime
            .block_on(schema.drop_schema())
            .expect("the benchmark's schema is dropped");
    }
}

criterion_group!(benches, recovery);
criterion_main!(benches);
