//! Hot paths of the runner and the load engine: building a request, reading a reply,
//! evaluating checks, and recording a sample.

use std::path::Path;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use hookbench::engine::assertions::evaluate;
use hookbench::engine::load::metrics::{record, Shards};
use hookbench::engine::reply::{Body, Reply};
use hookbench::protocol::{v2, Version};
use serde_json::json;

fn build_request(c: &mut Criterion) {
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Elements(1));
    g.bench_function("v2_text_encode", |b| {
        b.iter(|| {
            let r = v2::Request::text(black_box("user-42"), black_box("what is my balance"));
            serde_json::to_vec(&r).unwrap()
        })
    });
    g.finish();
}

fn checks(c: &mut Criterion) {
    let scenario = hookbench::scenario::parse_str(
        "steps:\n  - send: x\n    expect:\n      - status: 200\n      - text: {contains: \"$54,883\"}\n      - jsonpath: {path: \"$.data[0].type\", equals: text}\n      - messages: 2\n      - end_of_task: {reason: Fulfilled, task: Show Balance}\n      - latency: 3s\n",
        Path::new("bench.yaml"),
        &|_| None,
    )
    .unwrap();
    let body = json!({"to":"u","from":"st-1","data":[
        {"type":"text","val":"The balance in your Salary account ending with 3984 is $54,883.","createdOn":"2026-11-25T12:30:39.852Z","messageId":"ms-1"},
        {"type":"text","val":"Let me know if you need any other assistance.","createdOn":"2026-11-25T12:30:39.852Z","messageId":"ms-2"}],
        "_v":"v2","endOfTask":true,"endReason":"Fulfilled","completedTaskId":"dg-1","completedTaskName":"Show Balance"});
    let bytes = body.to_string().into_bytes();
    let mut g = c.benchmark_group("checks");
    g.throughput(Throughput::Elements(1));
    let read = |trees: bool| {
        let mut r = Reply {
            status: Some(200),
            latency: Duration::from_millis(20),
            converged: true,
            trees,
            ..Default::default()
        };
        r.push(
            Body::parse(black_box(&bytes), Version::V2, trees).unwrap(),
            Version::V2,
        );
        r.finish(Version::V2);
        r
    };
    // Whole: every body as a tree plus the merged document (a step with a JSONPath check).
    g.bench_function("read_reply_whole", |b| b.iter(|| read(true)));
    // Lean: texts, message count and task fields only (the load engine's usual step).
    g.bench_function("read_reply_lean", |b| b.iter(|| read(false)));
    let reply = read(true);
    g.bench_function("evaluate_six_checks", |b| {
        b.iter(|| {
            scenario.steps[0]
                .expect
                .iter()
                .map(|c| evaluate(c, black_box(&reply), &|_| None).passed)
                .filter(|p| *p)
                .count()
        })
    });
    g.finish();
}

fn recording(c: &mut Criterion) {
    let shards = Shards::new(2, 5);
    let mut g = c.benchmark_group("metrics");
    g.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    g.bench_function("record_turn_sample", |b| {
        b.iter(|| {
            n = n.wrapping_add(7919);
            shards.with(|s| {
                record(&mut s.dists.turn, Duration::from_micros(500 + n % 100_000));
                record(
                    &mut s.dists.steps[(n % 5) as usize],
                    Duration::from_micros(500 + n % 100_000),
                );
                s.counts.turns += 1;
            })
        })
    });
    g.finish();
}

criterion_group!(benches, build_request, checks, recording);
criterion_main!(benches);
