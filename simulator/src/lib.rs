//! `vitalsim`: the wearable simulator's pure core.
//!
//! Virtual patients with plausible physiology ([`patient`]), scripted and
//! labelled scenarios ([`scenario`], [`label`]), and virtual devices that
//! measure a patient the way real devices do ([`device`]), played together
//! in simulated time by [`simulation`]. Nothing here does I/O, reads the
//! wall clock or is async: transports and the command line are built around
//! it, and the same seed always plays the same patients.
//!
//! Around the core: [`transport`] (pseudo-terminals for serial devices, an
//! MQTT publisher for Wi-Fi ones) and [`play`], which paces a simulation
//! onto the wall clock and writes its labels.

pub mod device;
pub mod label;
pub mod patient;
pub mod play;
mod random;
pub mod scenario;
pub mod simulation;
pub mod transport;

pub use device::VirtualDevice;
pub use label::Label;
pub use patient::{Patient, TrueVitals};
pub use scenario::{Scenario, ScenarioKind};
pub use simulation::{
    DeviceSample, DeviceSpec, PatientSpec, Simulation, SimulationSpec, SpecError,
};
