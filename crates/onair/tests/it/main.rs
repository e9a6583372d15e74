//! The `onair` binary itself: the web UI in a real browser, and nodes as real processes
//! (one killed mid-broadcast).

mod browser;
mod nodes;
