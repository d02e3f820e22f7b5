# The `dev` profile (sourced by make-rootfs.sh): mise and opencode from the
# npm registry (with the image's Debian nodejs), tmux-resurrect and
# tmux-continuum for root. The lean default image never touches this.
NPM_REGISTRY=${BANGER_NPM_REGISTRY:-https://registry.npmjs.org}
TMUX_PLUGINS_URL=${BANGER_TMUX_PLUGINS_URL:-https://github.com/tmux-plugins}
DEV_NPM=(@jdxcode/mise opencode-ai)
DEV_TMUX=(tmux-resurrect tmux-continuum)

# Fail before debootstrap, naming each thing that cannot be fetched.
dev_check() {
  local missing=() p
  for p in "${DEV_NPM[@]}"; do
    curl -fsS -o /dev/null --max-time 20 "$NPM_REGISTRY/${p/\//%2f}" ||
      missing+=("$p (npm: $NPM_REGISTRY)")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    for p in "${DEV_TMUX[@]}"; do
      curl -fsS -o /dev/null --max-time 20 "$TMUX_PLUGINS_URL/$p/info/refs?service=git-upload-pack" ||
        missing+=("$p ($TMUX_PLUGINS_URL/$p)")
    done
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    die "the dev profile cannot fetch: $(IFS=', '; echo "${missing[*]}"); the default profile needs none of these"
  fi
}

dev_install() {
  local t=$1 p
  chroot "$t" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root npm_config_registry="$NPM_REGISTRY" \
    npm install -g --no-fund --no-audit "${DEV_NPM[@]}"
  install -d "$t/root/.tmux/plugins"
  for p in "${DEV_TMUX[@]}"; do
    git clone -q --depth 1 "$TMUX_PLUGINS_URL/$p" "$t/root/.tmux/plugins/$p"
  done
  cat > "$t/root/.tmux.conf" <<'CONF'
# banger dev profile: sessions survive a VM stop/start.
set -g @continuum-restore 'on'
set -g @continuum-save-interval '5'
run-shell ~/.tmux/plugins/tmux-resurrect/resurrect.tmux
run-shell ~/.tmux/plugins/tmux-continuum/continuum.tmux
CONF
}
