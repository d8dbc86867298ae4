//! The HTTP layer both web servers share (the storage http in `storage::http` and the gateway in
//! `gateway`): the accept loop with its connection limit and deadlines (`server`), serving a
//! file's bytes with validators and byte ranges (`file`), and parsing FastDFS download URLs
//! (`path`). Nothing here knows where files live or who serves which group; that stays with the
//! two servers.

pub mod file;
pub mod path;
pub mod server;
