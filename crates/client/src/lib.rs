//! The dronehook sender: signs, filters and delivers Drone webhook events.
//! Filled in by the sender issue.
