//! The HTTP layer both web servers share (the storage http in `storage::http` and the gateway in
//! `gateway`): the accept loop with its connection limit and deadlines (`server`), serving a
//! file's bytes (`file`) with byte ranges (`range`) and validators (`validators`), the response
//! bodies (`body`), file bodies and sending them with sendfile (`sendfile`), descriptors kept
//! open for hot files (`open_files`), parsing FastDFS
//! download URLs (`path`), and the per-request metrics and access log both servers wrap their
//! handlers in (`observe`). Nothing here knows where files
//! live or who serves which group; that stays with the two servers.

pub mod body;
pub mod file;
pub mod observe;
pub mod open_files;
pub mod path;
pub mod range;
pub mod sendfile;
pub mod server;
pub mod validators;
