#!/usr/bin/env bash
# What a Kubernetes CronJob for key rotation does, with the kubelet played locally (see
# docs/deploy.md): runs `sealed-session keys rotate --if-due` on the ring's source file and, when
# the file changed (or the volume has no ring yet), publishes it into VOLUME_DIR laid out as a
# Secret volume: a new timestamped directory, then `..data` renamed over the old link, with
# `ring.json -> ..data/ring.json`. Usage: scripts/cronjob.sh SOURCE VOLUME_DIR
set -euo pipefail
source=$1
volume=$2
before=$(sha256sum "$source")
sealed-session keys rotate --if-due --file "$source"
after=$(sha256sum "$source")
if [ "$before" = "$after" ] && [ -e "$volume/ring.json" ]; then
    echo "volume $volume unchanged"
    exit 0
fi
mkdir -p "$volume"
stamp="..$(date -u +%Y_%m_%d_%H_%M_%S).$$.$RANDOM"
mkdir "$volume/$stamp"
install -m 0400 "$source" "$volume/$stamp/ring.json"
ln -sfn "$stamp" "$volume/..data_tmp"
mv -T "$volume/..data_tmp" "$volume/..data"
[ -L "$volume/ring.json" ] || ln -s ..data/ring.json "$volume/ring.json"
# The kubelet removes the previous timestamped directory once the swap is done.
for old in "$volume"/..[0-9]*; do
    [ "$(basename "$old")" = "$stamp" ] || rm -rf "$old"
done
echo "published $source to $volume"
