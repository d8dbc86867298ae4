//! FastDFS command codes (tracker_proto.h / storage's own codes), by the names operators see in logs.

/// Every response, tracker or storage, carries this command code.
pub const RESP: u8 = 100;
pub const QUIT: u8 = 82;
pub const ACTIVE_TEST: u8 = 111;

// --- tracker: client queries -------------------------------------------------------------------
pub const SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE: u8 = 101;
pub const SERVICE_QUERY_FETCH_ONE: u8 = 102;
pub const SERVICE_QUERY_UPDATE: u8 = 103;
pub const SERVICE_QUERY_STORE_WITH_GROUP_ONE: u8 = 104;
pub const SERVICE_QUERY_FETCH_ALL: u8 = 105;
pub const SERVICE_QUERY_STORE_WITHOUT_GROUP_ALL: u8 = 106;
pub const SERVICE_QUERY_STORE_WITH_GROUP_ALL: u8 = 107;
pub const SERVER_LIST_ONE_GROUP: u8 = 90;
pub const SERVER_LIST_ALL_GROUPS: u8 = 91;
pub const SERVER_LIST_STORAGE: u8 = 92;
pub const SERVER_DELETE_STORAGE: u8 = 93;
/// The leader's "ip:port" (C 6.15.5+).
pub const SERVER_GET_LEADER: u8 = 95;
/// The monitoring lists of `fdfs_tracker_stat`, `fdfs_storage_stat`, `fdfs_volumn_stat` (C 6.16).
pub const SERVER_TRACKER_CLUSTER_STAT: u8 = 96;
pub const SERVER_STORAGE_CLUSTER_STAT: u8 = 97;
pub const SERVER_STORAGE_VOLUMN_STAT: u8 = 98;
pub const SERVER_DELETE_GROUP: u8 = 108;

// --- tracker: storage -> tracker ---------------------------------------------------------------
pub const STORAGE_GET_MY_IP: u8 = 60;
pub const STORAGE_FETCH_STORAGE_IDS: u8 = 69;
pub const STORAGE_PARAMETER_REQ: u8 = 75;
pub const STORAGE_REPORT_STATUS: u8 = 76;
/// A storage's view of its group (67-byte briefs), e.g. its own status after the tracker
/// moved it (storage-join.txt #302).
pub const STORAGE_REPLICA_CHG: u8 = 85;
pub const STORAGE_CHANGELOG_REQ: u8 = 77;
pub const STORAGE_SYNC_DEST_QUERY: u8 = 79;
pub const STORAGE_JOIN: u8 = 81;
pub const STORAGE_BEAT: u8 = 83;
pub const STORAGE_REPORT_DISK_USAGE: u8 = 84;
pub const STORAGE_SYNC_SRC_REQ: u8 = 86;
pub const STORAGE_SYNC_DEST_REQ: u8 = 87;
pub const STORAGE_SYNC_NOTIFY: u8 = 88;
pub const STORAGE_SYNC_REPORT: u8 = 89;

// --- storage: client commands ------------------------------------------------------------------
pub const REPORT_SERVER_ID: u8 = 9;
pub const UPLOAD_FILE: u8 = 11;
pub const DELETE_FILE: u8 = 12;
pub const SET_METADATA: u8 = 13;
pub const DOWNLOAD_FILE: u8 = 14;
pub const GET_METADATA: u8 = 15;
pub const UPLOAD_SLAVE_FILE: u8 = 21;
pub const QUERY_FILE_INFO: u8 = 22;
pub const UPLOAD_APPENDER_FILE: u8 = 23;
pub const APPEND_FILE: u8 = 24;
pub const MODIFY_FILE: u8 = 34;
pub const TRUNCATE_FILE: u8 = 36;
pub const REGENERATE_APPENDER_FILENAME: u8 = 38;

// --- storage: storage -> storage sync ----------------------------------------------------------
pub const SYNC_CREATE_FILE: u8 = 16;
pub const SYNC_DELETE_FILE: u8 = 17;
pub const SYNC_UPDATE_FILE: u8 = 18;
pub const SYNC_CREATE_LINK: u8 = 19;
pub const SYNC_APPEND_FILE: u8 = 25;
pub const FETCH_ONE_PATH_BINLOG: u8 = 26;
pub const SYNC_MODIFY_FILE: u8 = 35;
pub const SYNC_TRUNCATE_FILE: u8 = 37;
pub const SYNC_RENAME_FILE: u8 = 40;

/// Linux errno values FastDFS puts in a response header's status byte.
pub mod errno {
    pub const OK: u8 = 0;
    pub const ENOENT: u8 = 2;
    pub const EIO: u8 = 5;
    pub const EAGAIN: u8 = 11;
    pub const ENOMEM: u8 = 12;
    pub const EACCES: u8 = 13;
    pub const EBUSY: u8 = 16;
    pub const EEXIST: u8 = 17;
    pub const EINVAL: u8 = 22;
    pub const EFBIG: u8 = 27;
    pub const ENOSPC: u8 = 28;
    pub const ENAMETOOLONG: u8 = 36;
    pub const ENOSYS: u8 = 38;
    pub const EOPNOTSUPP: u8 = 95;
    pub const ETIMEDOUT: u8 = 110;

    /// The errno's name (`ENOENT`), `ok` for 0, `errno_<n>` for others: a metric label.
    pub fn name(status: u8) -> &'static str {
        match status {
            OK => "ok",
            ENOENT => "ENOENT",
            EIO => "EIO",
            EAGAIN => "EAGAIN",
            ENOMEM => "ENOMEM",
            EACCES => "EACCES",
            EBUSY => "EBUSY",
            EEXIST => "EEXIST",
            EINVAL => "EINVAL",
            EFBIG => "EFBIG",
            ENOSPC => "ENOSPC",
            ENAMETOOLONG => "ENAMETOOLONG",
            ENOSYS => "ENOSYS",
            EOPNOTSUPP => "EOPNOTSUPP",
            ETIMEDOUT => "ETIMEDOUT",
            _ => "other_errno",
        }
    }
}

/// A command's name in lower case (`upload_file`), for metrics and the access log; `other` for
/// a code this server does not know.
pub fn name(cmd: u8) -> &'static str {
    match cmd {
        QUIT => "quit",
        ACTIVE_TEST => "active_test",
        SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE => "query_store_without_group_one",
        SERVICE_QUERY_FETCH_ONE => "query_fetch_one",
        SERVICE_QUERY_UPDATE => "query_update",
        SERVICE_QUERY_STORE_WITH_GROUP_ONE => "query_store_with_group_one",
        SERVICE_QUERY_FETCH_ALL => "query_fetch_all",
        SERVICE_QUERY_STORE_WITHOUT_GROUP_ALL => "query_store_without_group_all",
        SERVICE_QUERY_STORE_WITH_GROUP_ALL => "query_store_with_group_all",
        SERVER_LIST_ONE_GROUP => "list_one_group",
        SERVER_LIST_ALL_GROUPS => "list_all_groups",
        SERVER_LIST_STORAGE => "list_storage",
        SERVER_DELETE_STORAGE => "delete_storage",
        SERVER_GET_LEADER => "get_leader",
        SERVER_TRACKER_CLUSTER_STAT => "tracker_cluster_stat",
        SERVER_STORAGE_CLUSTER_STAT => "storage_cluster_stat",
        SERVER_STORAGE_VOLUMN_STAT => "storage_volumn_stat",
        SERVER_DELETE_GROUP => "delete_group",
        STORAGE_GET_MY_IP => "get_my_ip",
        STORAGE_FETCH_STORAGE_IDS => "fetch_storage_ids",
        STORAGE_PARAMETER_REQ => "parameter_req",
        STORAGE_REPORT_STATUS => "report_status",
        STORAGE_REPLICA_CHG => "replica_chg",
        STORAGE_CHANGELOG_REQ => "changelog_req",
        STORAGE_SYNC_DEST_QUERY => "sync_dest_query",
        STORAGE_JOIN => "join",
        STORAGE_BEAT => "beat",
        STORAGE_REPORT_DISK_USAGE => "report_disk_usage",
        STORAGE_SYNC_SRC_REQ => "sync_src_req",
        STORAGE_SYNC_DEST_REQ => "sync_dest_req",
        STORAGE_SYNC_NOTIFY => "sync_notify",
        STORAGE_SYNC_REPORT => "sync_report",
        REPORT_SERVER_ID => "report_server_id",
        UPLOAD_FILE => "upload_file",
        DELETE_FILE => "delete_file",
        SET_METADATA => "set_metadata",
        DOWNLOAD_FILE => "download_file",
        GET_METADATA => "get_metadata",
        UPLOAD_SLAVE_FILE => "upload_slave_file",
        QUERY_FILE_INFO => "query_file_info",
        UPLOAD_APPENDER_FILE => "upload_appender_file",
        APPEND_FILE => "append_file",
        MODIFY_FILE => "modify_file",
        TRUNCATE_FILE => "truncate_file",
        REGENERATE_APPENDER_FILENAME => "regenerate_appender_filename",
        SYNC_CREATE_FILE => "sync_create_file",
        SYNC_DELETE_FILE => "sync_delete_file",
        SYNC_UPDATE_FILE => "sync_update_file",
        SYNC_CREATE_LINK => "sync_create_link",
        SYNC_APPEND_FILE => "sync_append_file",
        FETCH_ONE_PATH_BINLOG => "fetch_one_path_binlog",
        SYNC_MODIFY_FILE => "sync_modify_file",
        SYNC_TRUNCATE_FILE => "sync_truncate_file",
        SYNC_RENAME_FILE => "sync_rename_file",
        _ => "other",
    }
}
