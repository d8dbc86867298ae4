//! Health probes (tcp, http, fastdfs active-test, process, exec) with interval/timeout/rise/fall.
