#!/bin/sh
# An rsh stand-in (like local_rsh.sh) whose host "b" has a private view of $PRIVATE_DIR: a
# fresh tmpfs mounted over it in a mount namespace of its own, as if that host mounted
# another file system there. For the test that a --ckpt-dir not shared by every host is
# refused. Needs root (unshare, mount).
host=$1
shift
if [ "$host" = b ]; then
  exec unshare --mount --propagation private sh -c "mount -t tmpfs tmpfs '$PRIVATE_DIR' && $*"
fi
exec sh -c "$*"
