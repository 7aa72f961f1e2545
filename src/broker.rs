//! The embedded MQTT broker (rumqttd) for the out-of-the-box setup.
//!
//! A gateway in a home with no broker of its own runs this one on
//! localhost: Wi-Fi wearables (and the bundled simulator) publish to it.
//! rumqttd's broker blocks its thread and cannot be stopped, so it runs on
//! a dedicated thread for the life of the process.

use std::net::SocketAddr;

/// The embedded broker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The generated configuration was rejected (a bug).
    #[error("embedded broker configuration: {0}")]
    Config(String),
    /// The listen address is taken.
    #[error(
        "cannot listen on {addr}: {error} (another broker running? set embedded_broker.listen to a free port)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The thread could not be spawned.
    #[error("cannot start the broker thread: {0}")]
    Thread(std::io::Error),
}

/// The broker's configuration: small limits, because a home has a handful
/// of devices and a Pi has little memory. `max_payload_size` matches the
/// gateway's own packet limit, so an oversized message is refused at the
/// broker instead of poisoning the gateway's persistent session.
fn config(listen: SocketAddr) -> String {
    format!(
        r#"
id = 0
[router]
id = 0
max_connections = 64
max_outgoing_packet_count = 200
max_segment_size = 2097152
max_segment_count = 4

[v4.1]
name = "v4-1"
listen = "{listen}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 10000
max_payload_size = {max_payload}
max_inflight_count = 200
dynamic_filters = true
"#,
        max_payload = crate::source::mqtt::MAX_PACKET_BYTES
    )
}

/// Start the broker listening on `listen` and return once it accepts
/// connections.
pub fn start(listen: SocketAddr) -> Result<(), BrokerError> {
    // rumqttd cannot report a bind failure back to us, so check the port
    // is free first (the window between the check and the broker's own bind
    // is harmless: the broker would then log and we would time out below).
    std::net::TcpListener::bind(listen).map_err(|error| BrokerError::Bind {
        addr: listen,
        error,
    })?;
    let config: rumqttd::Config =
        toml::from_str(&config(listen)).map_err(|e| BrokerError::Config(e.to_string()))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    // Wait (briefly) until it answers an MQTT CONNECT.
    for _ in 0..200 {
        if probe(listen) {
            tracing::info!(%listen, "embedded MQTT broker listening");
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(BrokerError::Bind {
        addr: listen,
        error: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "broker did not start listening within 2 s",
        ),
    })
}

/// Whether an MQTT broker answers on `addr`: a minimal MQTT 3.1.1 CONNECT
/// (clean session, client id "vitalgate-probe"), its CONNACK, DISCONNECT.
/// A bare TCP connect would do, but the broker logs those as errors.
fn probe(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    const CONNECT: &[u8] = b"\x10\x1b\x00\x04MQTT\x04\x02\x00\x0a\x00\x0fvitalgate-probe";
    let Ok(mut s) =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(500)));
    let mut ack = [0u8; 4];
    let ok = s.write_all(CONNECT).is_ok()
        && s.read_exact(&mut ack).is_ok()
        && ack[0] == 0x20
        && ack[3] == 0;
    let _ = s.write_all(b"\xe0\x00");
    ok
}

/// A free loopback port, for the demo and tests.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
