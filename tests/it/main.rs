//! Integration tests: each test starts the real `switchboard` binary on
//! 127.0.0.1:0 and talks to it with real WebSocket and HTTP clients.

mod common;
mod rawws;

mod auth;
mod cli;
mod cluster;
mod collab;
mod crash;
mod deflate;
mod delivery;
mod deps;
mod fallback;
mod fdlimit;
mod hostile;
mod http;
mod limits;
mod logs;
mod nginx;
mod notify;
mod offline;
mod openapi;
mod pages;
mod paths;
mod presence;
mod proxy;
mod proxy_hooks;
mod publish_options;
mod recovery;
mod rooms;
mod rpc;
mod scrollback;
mod server_api;
mod shutdown;
mod signal;
mod socketio;
mod state;
mod streams;
mod streams_rest;
mod watch;

mod broker;
mod metrics;
mod monitor;
mod mqtt;
mod storage;
