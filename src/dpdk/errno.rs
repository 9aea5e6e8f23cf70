//! The Linux errno values DPDK reports through rte_errno and negative return codes.
pub const ENOEXEC: i32 = 8;
pub const EAGAIN: i32 = 11;
pub const ENOMEM: i32 = 12;
pub const EACCES: i32 = 13;
pub const EFAULT: i32 = 14;
pub const EBUSY: i32 = 16;
pub const EEXIST: i32 = 17;
pub const ENODEV: i32 = 19;
pub const EINVAL: i32 = 22;
pub const EPROTO: i32 = 71;
pub const ENOTSUP: i32 = 95;
pub const EALREADY: i32 = 114;
