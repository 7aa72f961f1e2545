//! Decoder throughput per wire format, in bytes of raw input per second,
//! and Bluetooth LE GATT characteristic decoding in values per second.
//!
//! Input is what the format's own encoder writes for a patient whose values
//! move every second, so every decoder sees realistic frames (and the
//! message formats one message per line, as the `decode` command reads
//! them). Run: `cargo bench -p vitalgate-devices --bench decoders`
//! (`-- gatt` for the GATT group alone).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use vitalgate_devices::decode::Decoder;
use vitalgate_devices::format::{FormatOptions, Framing, ble_gatt};
use vitalgate_devices::gatt::date_time::DateTime;
use vitalgate_devices::gatt::float::Float11073;
use vitalgate_devices::gatt::heart_rate::{HeartRateMeasurement, HeartRateValue, SensorContact};
use vitalgate_devices::gatt::plx::{
    PlxContinuous, PlxDeviceStatus, PlxMeasurementStatus, PlxSpotCheck, SpO2Pr,
};
use vitalgate_devices::gatt::{Address, Characteristic, RelayedValue, Service};
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
        if format.framing() == Framing::Message {
            // One message per line: a JSON message per snapshot, a capture
            // line per GATT characteristic value.
            if bytes.len() > start && bytes.last() != Some(&b'\n') {
                bytes.push(b'\n');
            }
            let mut line = start;
            for (end, &byte) in bytes.iter().enumerate().skip(start) {
                if byte == b'\n' {
                    messages.push((line, end));
                    line = end + 1;
                }
            }
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

/// Characteristic values per GATT case.
const GATT_VALUES: usize = 100_000;

/// When the gateway received the values (the time of those that carry none).
const RECEIVED: Timestamp = Timestamp(1_763_708_462_000);

/// What one wearable of each kind sends in second `second` of a patient
/// whose values move every second, through the encoders the simulator
/// uses: a heart rate strap (0–2 RR intervals, contact detected), a
/// thermometer (time stamp and site), a cuff (time stamp and pulse rate), a
/// continuous oximeter (pulse amplitude index and both status fields, low
/// perfusion every 7th second) and a spot-check oximeter (timestamp,
/// measurement status, pulse amplitude index).
fn gatt_sample(second: i64) -> [(Characteristic, Vec<u8>); 5] {
    let w = (second % 17) as f64;
    let mut snap = Snapshot {
        time: Timestamp(1_763_708_462_000 + second * 1000),
        quality: Quality::NONE,
        seq: second as u64,
        ..Snapshot::default()
    };
    for (v, value) in [
        (Vital::BodyTemperature, 36.5 + w / 20.0),
        (Vital::SystolicBp, 120.0 + w),
        (Vital::DiastolicBp, 80.0 + w / 2.0),
        (Vital::MeanArterialPressure, 93.0 + w / 2.0),
        (Vital::PulseRate, 60.0 + w),
    ] {
        snap.set(v, Some(value));
    }
    let only = |service: Service| {
        let mut sent = ble_gatt::values(service, &snap);
        assert_eq!(sent.len(), 1, "{service:?}");
        sent.remove(0)
    };
    let bpm = 61 + (second % 17) as u16;
    // 1/1024 s, a little irregular.
    let rr = |i: i64| (60.0 * 1024.0 / f64::from(bpm)) as u16 + (i as u16) * 9;
    let heart_rate = HeartRateMeasurement {
        heart_rate: HeartRateValue::U8(bpm as u8),
        contact: SensorContact::Detected,
        energy_expended: None,
        rr_intervals: (0..second % 3).map(rr).collect(),
    };
    let sfloat = |v: f64, decimals: u8| Float11073::with_decimals(v, decimals).unwrap();
    let spo2_pr = SpO2Pr {
        spo2: sfloat(90.0 + w / 2.0, 0),
        pulse_rate: sfloat(60.0 + w, 0),
    };
    let continuous = PlxContinuous {
        normal: spo2_pr,
        fast: None,
        slow: None,
        measurement_status: Some(PlxMeasurementStatus::VALIDATED_DATA),
        device_status: Some(if second % 7 == 0 {
            PlxDeviceStatus::LOW_PERFUSION
        } else {
            PlxDeviceStatus::default()
        }),
        pulse_amplitude_index: Some(sfloat(1.0 + w / 10.0, 2)),
    };
    let spot_check = PlxSpotCheck {
        spo2_pr,
        timestamp: DateTime::from_timestamp(snap.time),
        measurement_status: Some(
            PlxMeasurementStatus::VALIDATED_DATA | PlxMeasurementStatus::FULLY_QUALIFIED_DATA,
        ),
        device_status: None,
        pulse_amplitude_index: Some(sfloat(1.0 + w / 10.0, 2)),
        device_clock_not_set: false,
    };
    let (mut plx_continuous, mut plx_spot_check) = (Vec::new(), Vec::new());
    continuous.encode(&mut plx_continuous).unwrap();
    spot_check.encode(&mut plx_spot_check).unwrap();
    [
        (Characteristic::HeartRateMeasurement, heart_rate.encode()),
        only(Service::HealthThermometer),
        only(Service::BloodPressure),
        (Characteristic::PlxContinuous, plx_continuous),
        (Characteristic::PlxSpotCheck, plx_spot_check),
    ]
}

/// [`GATT_VALUES`] values of the kinds `pick` takes from each second's
/// sample (its index in [`gatt_sample`]), back to back in one buffer:
/// the bytes and each value's characteristic and span.
fn gatt_capture(pick: &[usize]) -> (Vec<u8>, Vec<(Characteristic, usize, usize)>) {
    let mut bytes = Vec::new();
    let mut values = Vec::with_capacity(GATT_VALUES);
    let mut second = 0i64;
    while values.len() < GATT_VALUES {
        let sample = gatt_sample(second);
        for &i in pick {
            if values.len() == GATT_VALUES {
                break;
            }
            let (c, value) = &sample[i];
            let start = bytes.len();
            bytes.extend_from_slice(value);
            values.push((*c, start, bytes.len()));
        }
        second += 1;
    }
    (bytes, values)
}

/// The values of [`gatt_capture`] as BLE proxy messages (one wearable
/// address per kind), JSON with the proxy's time or binary.
fn proxy_capture(json: bool) -> (Vec<u8>, Vec<(usize, usize)>) {
    let (values, spans) = gatt_capture(&[0, 1, 2, 3, 4]);
    let mut bytes = Vec::new();
    let mut messages = Vec::with_capacity(spans.len());
    for (i, &(c, s, e)) in spans.iter().enumerate() {
        let relayed = RelayedValue {
            address: Address([0xC4, 0x7C, 0x8D, 0x6A, 0x01, (i % 5) as u8]),
            uuid: c.uuid(),
            value: values[s..e].to_vec(),
            time: Some(RECEIVED.add_millis(i as i64 / 5 * 1000)),
        };
        let start = bytes.len();
        if json {
            bytes.extend_from_slice(&relayed.to_json());
        } else {
            bytes.extend_from_slice(&relayed.to_binary());
        }
        messages.push((start, bytes.len()));
    }
    (bytes, messages)
}

/// Events a value reported: measurements, statuses, errors.
#[derive(Default)]
struct Events([u64; 3]);

impl Events {
    fn count(&mut self, d: Decoded) {
        match d {
            Decoded::Measurement(m) => {
                self.0[0] += 1;
                black_box(m.value);
            }
            Decoded::Status(s) => {
                self.0[1] += 1;
                black_box(s.quality);
            }
            Decoded::Error(e) => {
                self.0[2] += 1;
                black_box(e);
            }
        }
    }

    /// All of them, after checking that the input was decoded.
    fn checked(&self) -> u64 {
        assert!(self.0[0] > 0 && self.0[2] == 0, "{:?}", self.0);
        self.0.iter().sum()
    }
}

fn gatt(c: &mut Criterion) {
    let mut group = c.benchmark_group("gatt");
    group.sample_size(20);
    group.throughput(Throughput::Elements(GATT_VALUES as u64));
    // Every value straight to `Characteristic::report`, as a direct
    // connection's notifications reach it.
    for (name, pick) in [
        ("mix", &[0, 1, 2, 3, 4][..]),
        ("heart-rate", &[0]),
        ("thermometer", &[1]),
        ("blood-pressure", &[2]),
        ("plx-continuous", &[3]),
        ("plx-spot-check", &[4]),
    ] {
        let (bytes, values) = gatt_capture(pick);
        group.bench_with_input(
            BenchmarkId::from_parameter(name),
            &(bytes, values),
            |b, (bytes, values)| {
                b.iter(|| {
                    let mut events = Events::default();
                    let mut sink = |d: Decoded| events.count(d);
                    for &(c, s, e) in values {
                        c.report(&bytes[s..e], Some(RECEIVED), s as u64, &mut sink);
                    }
                    events.checked()
                })
            },
        );
    }
    // The mix through a BLE proxy: each message read (address, UUID,
    // value, time), then the value reported as the daemon does.
    for (name, json) in [("proxy-json", true), ("proxy-binary", false)] {
        let (bytes, messages) = proxy_capture(json);
        group.bench_with_input(
            BenchmarkId::from_parameter(name),
            &(bytes, messages),
            |b, (bytes, messages)| {
                b.iter(|| {
                    let mut events = Events::default();
                    let mut sink = |d: Decoded| events.count(d);
                    for &(s, e) in messages {
                        let r = RelayedValue::parse(&bytes[s..e]).unwrap();
                        black_box(r.address);
                        ble_gatt::report_value(
                            &[],
                            r.uuid,
                            &r.value,
                            r.time.or(Some(RECEIVED)),
                            s as u64,
                            &mut sink,
                        );
                    }
                    events.checked()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, decoders, gatt);
criterion_main!(benches);
