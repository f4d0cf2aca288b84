//! The dronehook receiver: a hyper server that verifies, journals and dispatches
//! Drone webhook events. Filled in by the receiver issue.
