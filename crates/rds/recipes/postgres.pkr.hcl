# The engine image of AWS::RDS::DBInstance with Engine postgres: Debian's own PostgreSQL
# server, from the mirror the host's apt sources name. Shipped inside the spindle binary;
# the daemon bakes it on the first DB instance and reuses it after (see crates/rds).
source "spindle" "postgres" {
  base       = "debian:bookworm"
  image_name = "spindle-rds-postgres:latest"
}

build {
  sources = ["source.spindle.postgres"]

  provisioner "apt" {
    packages = ["postgresql"]
  }
}
