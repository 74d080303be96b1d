# Sourced by the asset and cluster scripts.
#
# oci_image NAME ROOTFS OUT ENTRYPOINT_JSON [USER]: a single-layer OCI image layout in the
# directory OUT, written with tar and sha256sum (no registry, no Docker), that
# `ctr images import` (as a tar of the directory) and BuildKit named contexts accept.
oci_image() {
  local name=$1 rootfs=$2 out=$3 ep=$4 user=${5:-} d layer ldig lsize cdig csize mdig msize
  d=$(mktemp -d)
  mkdir -p "$d/blobs/sha256"
  layer="$d/layer.tar"
  tar --sort=name --mtime=@0 --numeric-owner --xattrs -C "$rootfs" -cf "$layer" .
  ldig=$(sha256sum "$layer" | cut -d' ' -f1) lsize=$(stat -c %s "$layer")
  mv "$layer" "$d/blobs/sha256/$ldig"
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":%s,"User":"%s","WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"vault test/assets/build-node.sh"}]}' \
    "$ep" "$user" "$ldig" >"$d/config.json"
  cdig=$(sha256sum "$d/config.json" | cut -d' ' -f1) csize=$(stat -c %s "$d/config.json")
  mv "$d/config.json" "$d/blobs/sha256/$cdig"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$cdig" "$csize" "$ldig" "$lsize" >"$d/manifest.json"
  mdig=$(sha256sum "$d/manifest.json" | cut -d' ' -f1) msize=$(stat -c %s "$d/manifest.json")
  mv "$d/manifest.json" "$d/blobs/sha256/$mdig"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$mdig" "$msize" "$name" "${name##*:}" >"$d/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$d/oci-layout"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  cp -a "$d/." "$out.tmp/"
  rm -rf "$d" "$out" && mv "$out.tmp" "$out"
}
