//! Decoder throughput per wire format, in bytes of raw input per second.
//!
//! Input is what the format's own encoder writes for a patient whose values
//! move every second, so every decoder sees realistic frames (and the
//! message formats one message per line, as the `decode` command reads
//! them). Run: `cargo bench -p vitalgate-devices --bench decoders`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use vitalgate_devices::decode::Decoder;
use vitalgate_devices::format::FormatOptions;
use vitalgate_devices::{Decoded, Format, Quality, Snapshot, Timestamp, Vital};

/// About this much input per format.
const INPUT_BYTES: usize = 4 << 20;

fn capture(format: Format) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut encoder = format.encoder("bench-device");
    let mut bytes = Vec::with_capacity(INPUT_BYTES + 4096);
    let mut messages = Vec::new();
    let mut second = 0i64;
    while bytes.len() < INPUT_BYTES {
        let mut snap = Snapshot {
            time: Timestamp(1_763_708_462_000 + second * 1000),
            quality: Quality::NONE,
            seq: second as u64,
            ..Snapshot::default()
        };
        let w = (second % 17) as f64;
        for (v, value) in [
            (Vital::Spo2, 90.0 + w / 2.0),
            (Vital::PulseRate, 60.0 + w),
            (Vital::HeartRate, 61.0 + w),
            (Vital::RespiratoryRate, 14.0 + w / 4.0),
            (Vital::BodyTemperature, 36.5 + w / 20.0),
            (Vital::SystolicBp, 120.0 + w),
            (Vital::DiastolicBp, 80.0 + w / 2.0),
            (Vital::MeanArterialPressure, 93.0 + w / 2.0),
            (Vital::PerfusionIndex, 1.0 + w / 10.0),
            (Vital::RrInterval, 800.0 + w * 10.0),
        ] {
            if format.vitals().contains(&v) {
                snap.set(v, Some(value));
            }
        }
        let start = bytes.len();
        encoder.encode(&snap, &mut bytes);
        if matches!(format, Format::Senml | Format::OpenMhealth) {
            messages.push((start, bytes.len()));
            bytes.push(b'\n');
        }
        second += 1;
    }
    (bytes, messages)
}

fn decoders(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.sample_size(20);
    for format in Format::ALL {
        let (bytes, messages) = capture(format);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format.name()),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let mut values = 0u64;
                    let mut sink = |d: Decoded| {
                        if let Decoded::Measurement(m) = d {
                            values += 1;
                            black_box(m.value);
                        }
                    };
                    match format.decoder(&FormatOptions::default()) {
                        Decoder::Stream(mut d) => {
                            for chunk in bytes.chunks(4096) {
                                d.feed(chunk, &mut sink);
                            }
                            d.finish(&mut sink);
                        }
                        Decoder::Message(mut d) => {
                            for &(s, e) in &messages {
                                d.decode(&bytes[s..e], s as u64, Timestamp(0), &mut sink);
                            }
                        }
                    }
                    assert!(values > 0);
                    values
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, decoders);
criterion_main!(benches);
