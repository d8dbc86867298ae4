//! Tracker client: the queries FastDFS clients send to a tracker, over any byte stream, returning
//! typed values. Replies with 16- or 46-byte IP fields are both accepted (told apart by length),
//! so this works against trackers in any `response_ip_addr_size` mode.
//!
//! Errors: `ConnError::Io` for transport failures, `ConnError::Proto(ProtoError::Status(errno))`
//! when the tracker refuses (e.g. 2 ENOENT no storage, 28 ENOSPC no room), other `Proto` errors
//! for replies that do not decode.

use crate::proto::cmd;
use crate::proto::connection::{read_message, write_message, ConnError};
use crate::proto::tracker::{
    encode_group, FetchTargets, FileQuery, GroupStat, ListStorageReq, ReportStatusReq, StorageAddr,
    StorageBrief, StorageStat, StoreTarget, StoreTargets, SyncSource, SyncSrcReq,
};
use crate::proto::ProtoError;
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest tracker reply accepted (a storage list of a few hundred storages fits easily).
pub const MAX_REPLY: u64 = 4 << 20;

/// Sends one request and returns the reply body, turning a non-zero status into an error.
pub async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    command: u8,
    body: &[u8],
) -> Result<Vec<u8>, ConnError> {
    write_message(stream, command, 0, body).await?;
    let (h, reply) = read_message(stream, MAX_REPLY).await?;
    if h.cmd != cmd::RESP {
        return Err(ProtoError::UnexpectedCommand(h.cmd).into());
    }
    if h.status != 0 {
        return Err(ProtoError::Status(h.status).into());
    }
    Ok(reply)
}

/// Where to upload: QUERY_STORE_WITHOUT_GROUP_ONE (None) or QUERY_STORE_WITH_GROUP_ONE.
pub async fn query_store<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    group: Option<&str>,
) -> Result<StoreTarget, ConnError> {
    let reply = match group {
        Some(g) => {
            request(
                stream,
                cmd::SERVICE_QUERY_STORE_WITH_GROUP_ONE,
                &encode_group(g),
            )
            .await?
        }
        None => request(stream, cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE, &[]).await?,
    };
    Ok(StoreTarget::decode(&reply)?)
}

/// Every storage an upload may go to: QUERY_STORE_WITHOUT_GROUP_ALL / WITH_GROUP_ALL.
pub async fn query_store_all<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    group: Option<&str>,
) -> Result<StoreTargets, ConnError> {
    let reply = match group {
        Some(g) => {
            request(
                stream,
                cmd::SERVICE_QUERY_STORE_WITH_GROUP_ALL,
                &encode_group(g),
            )
            .await?
        }
        None => request(stream, cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ALL, &[]).await?,
    };
    Ok(StoreTargets::decode(&reply)?)
}

async fn file_query<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    command: u8,
    group: &str,
    filename: &str,
) -> Result<FetchTargets, ConnError> {
    let body = FileQuery {
        group: group.into(),
        filename: filename.into(),
    }
    .encode();
    let reply = request(stream, command, &body).await?;
    let t = FetchTargets::decode(&reply)?;
    if t.addrs.is_empty() {
        return Err(ProtoError::Truncated {
            need: 39,
            have: reply.len(),
        }
        .into());
    }
    Ok(t)
}

/// The storage to download `group/filename` from (QUERY_FETCH_ONE).
pub async fn query_fetch_one<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    group: &str,
    filename: &str,
) -> Result<StorageAddr, ConnError> {
    let mut t = file_query(stream, cmd::SERVICE_QUERY_FETCH_ONE, group, filename).await?;
    Ok(t.addrs.swap_remove(0))
}

/// Every storage that can serve `group/filename` (QUERY_FETCH_ALL).
pub async fn query_fetch_all<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    group: &str,
    filename: &str,
) -> Result<Vec<StorageAddr>, ConnError> {
    Ok(
        file_query(stream, cmd::SERVICE_QUERY_FETCH_ALL, group, filename)
            .await?
            .addrs,
    )
}

/// The storage that takes changes to `group/filename` (delete, metadata, append...).
pub async fn query_update<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    group: &str,
    filename: &str,
) -> Result<StorageAddr, ConnError> {
    let mut t = file_query(stream, cmd::SERVICE_QUERY_UPDATE, group, filename).await?;
    Ok(t.addrs.swap_remove(0))
}

/// SERVER_LIST_ALL_GROUPS.
pub async fn list_groups<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<Vec<GroupStat>, ConnError> {
    let reply = request(stream, cmd::SERVER_LIST_ALL_GROUPS, &[]).await?;
    Ok(GroupStat::decode_list(&reply)?)
}

/// SERVER_LIST_ONE_GROUP.
pub async fn list_group<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    group: &str,
) -> Result<GroupStat, ConnError> {
    let reply = request(stream, cmd::SERVER_LIST_ONE_GROUP, &encode_group(group)).await?;
    let mut list = GroupStat::decode_list(&reply)?;
    if list.len() != 1 {
        return Err(ProtoError::BadLength {
            have: reply.len(),
            expected: "one group stat".into(),
        }
        .into());
    }
    Ok(list.swap_remove(0))
}

/// SERVER_LIST_STORAGE: the storages of `group` (or the one named `storage_id`).
pub async fn list_storages<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    group: &str,
    storage_id: Option<&str>,
) -> Result<Vec<StorageStat>, ConnError> {
    let body = ListStorageReq {
        group: group.into(),
        storage_id: storage_id.map(str::to_owned),
    }
    .encode();
    let reply = request(stream, cmd::SERVER_LIST_STORAGE, &body).await?;
    Ok(StorageStat::decode_list(&reply)?)
}

/// ACTIVE_TEST: Ok when the tracker answers.
pub async fn active_test<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<(), ConnError> {
    let reply = request(stream, cmd::ACTIVE_TEST, &[]).await?;
    if !reply.is_empty() {
        return Err(ProtoError::BadLength {
            have: reply.len(),
            expected: "0".into(),
        }
        .into());
    }
    Ok(())
}

/// SYNC_SRC_REQ: who copies old data to `dest_id`, and up to when (None: nobody, it is not
/// waiting for old data). A storage asks this to learn whether it must push to a newcomer.
pub async fn sync_src_req<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    group: &str,
    dest_id: &str,
) -> Result<Option<SyncSource>, ConnError> {
    let body = SyncSrcReq {
        group: group.into(),
        dest_id: dest_id.into(),
    }
    .encode();
    let reply = request(stream, cmd::STORAGE_SYNC_SRC_REQ, &body).await?;
    Ok(SyncSource::decode_reply(&reply)?)
}

/// REPORT_STATUS: sets the status of the storage `brief` names (id + port) in `group`, e.g. a
/// sync source marking its destination SYNCING, then OFFLINE when the old data is copied.
pub async fn report_status<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    group: &str,
    brief: &StorageBrief,
) -> Result<(), ConnError> {
    let body = ReportStatusReq {
        group: group.into(),
        brief: brief.clone(),
    }
    .encode();
    request(stream, cmd::STORAGE_REPORT_STATUS, &body).await?;
    Ok(())
}

/// Tells the tracker the connection is closing (QUIT has no reply).
pub async fn quit<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<(), ConnError> {
    write_message(stream, cmd::QUIT, 0, &[]).await
}

/// The errno of a tracker refusal, if that is what `e` is.
pub fn refusal(e: &ConnError) -> Option<u8> {
    match e {
        ConnError::Proto(ProtoError::Status(s)) => Some(*s),
        _ => None,
    }
}
