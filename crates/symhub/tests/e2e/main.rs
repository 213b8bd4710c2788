//! End-to-end tests: the real `symhub` binary against fake upstreams that are real HTTP
//! servers, driven over real HTTP on loopback (and a UNIX socket).

mod elf_support;
mod native_support;
mod support;

mod access;
mod api_errors;
mod console;
mod debuginfod;
mod debuginfod_rig;
mod deploy;
mod diskfull;
mod hardening;
mod logs;
mod missing;
mod native;
mod native_tools;
mod packages;
mod packages_elf;
mod proxy;
mod resilience;
mod retention;
mod scale;
mod security;
mod server;
mod spelling;
mod symbolication;
mod transactions;
mod upload;
mod upstream_answers;
mod zerocopy;
