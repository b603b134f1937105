# The twine image: a Debian base with the twine package installed from the project's Spindle
# repo, and Debian's OpenSSH server for `spindle ssh` (started by `spindle-sshd` before the app
# with a host key of the instance's own and a certificate from the account's host CA). `spindle up` bakes it (`[images.twine]` in spindle.toml) and passes `repo_url` and
# `repo_keyring`; by hand: spindle bake build -var repo_url=URL -var repo_keyring=FILE twine.pkr.hcl
variable "base" {
  description = "The base image: debian:SUITE, or image:NAME:TAG of a parent with dpkg and apt"
  default     = "debian:bookworm"
}

variable "repo_url" {
  description = "The Spindle repo holding twine (http://HOST:PORT/apt/ACCOUNT/PREFIX)"
}

variable "repo_keyring" {
  description = "The repo's public key, a binary keyring file"
}

source "spindle" "twine" {
  base          = var.base
  image_name    = "twine:latest"
  cmd           = ["/bin/sh", "-c", "/usr/local/sbin/spindle-sshd; exec /usr/bin/twine --listen 0.0.0.0:8080"]
  exposed_ports = ["8080/tcp"]
}

build {
  sources = ["source.spindle.twine"]

  provisioner "apt" {
    packages = ["openssh-server", "curl"]
  }

  # Every instance makes its own host key at boot: none may be baked into the image.
  provisioner "shell" {
    inline = ["rm -f /etc/ssh/ssh_host_*"]
  }

  provisioner "file" {
    source      = "spindle-sshd"
    destination = "/usr/local/sbin/spindle-sshd"
    mode        = "0755"
  }

  provisioner "apt" {
    packages = ["twine"]
    repo     = var.repo_url
    keyring  = var.repo_keyring
  }

  # Starts twine once inside the image and asks for a page, so a broken package fails the
  # bake rather than the first instance.
  provisioner "warm" {
    command = "/usr/bin/twine --listen 127.0.0.1:8080"
    urls    = ["http://127.0.0.1:8080/healthz"]
    timeout = "30s"
  }
}
