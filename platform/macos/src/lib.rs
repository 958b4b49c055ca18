//! macOS Endpoint Security, as plain records.
//!
//! In: Endpoint Security `NOTIFY_EXEC`/`FORK`/`EXIT` messages (live client, macOS only) or Apple's
//! `eslogger` NDJSON (replay, every platform). Out: `EsRecord`s with instigator and target process
//! facts. Knows nothing of ECS or rules: `execsentry`'s `source::eslogger` maps them into `ProcessEvent`.
