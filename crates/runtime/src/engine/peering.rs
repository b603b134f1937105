//! Peering links between two VPC routers: a veth pair, a route each way, and each router's
//! forwarding policy widened to the peer's CIDR.

use crate::intent::Intent;
use crate::net::{self, NetError};

use super::{check_id, new_id, Peering, Runtime, RuntimeError};

impl Runtime {
    /// Peers two VPCs: a veth link between their routers, a route each way, and each router's
    /// forwarding policy widened to the other's CIDR (and only that).
    pub fn create_peering(
        &self,
        id: Option<&str>,
        a: &str,
        b: &str,
    ) -> Result<Peering, RuntimeError> {
        if let Some(id) = id {
            check_id("pcx", id)?;
        }
        let mut st = self.lock();
        let va = st
            .vpcs
            .get(a)
            .ok_or_else(|| NetError::NotFound {
                kind: "VPC",
                id: a.into(),
            })?
            .clone();
        let vb = st
            .vpcs
            .get(b)
            .ok_or_else(|| NetError::NotFound {
                kind: "VPC",
                id: b.into(),
            })?
            .clone();
        let bad = |reason| NetError::BadPeering {
            a: a.into(),
            a_cidr: va.cidr,
            b: b.into(),
            b_cidr: vb.cidr,
            reason,
        };
        if a == b {
            return Err(bad("a VPC cannot peer with itself").into());
        }
        if va.cidr.overlaps(&vb.cidr) {
            return Err(bad("their CIDRs overlap").into());
        }
        if st
            .peerings
            .values()
            .any(|p| (p.a == a && p.b == b) || (p.a == b && p.b == a))
        {
            return Err(bad("they are already peered").into());
        }
        if st.peers_of(a).iter().any(|c| c.overlaps(&vb.cidr))
            || st.peers_of(b).iter().any(|c| c.overlaps(&va.cidr))
        {
            return Err(bad("one of them is already peered with an overlapping CIDR").into());
        }
        let id = id
            .map(str::to_string)
            .unwrap_or_else(|| new_id("pcx", &self.inner.cfg.prefix));
        if st.peerings.contains_key(&id) {
            return Err(NetError::Exists {
                kind: "peering",
                id,
            }
            .into());
        }
        let index = st.next_peer_index;
        let (_, a_ip, b_ip) = net::peering_link(index);
        let link = format!("x{index}");
        // On record before the link exists: a kill from here on leaves an intent that the
        // next open undoes (see `crate::intent`).
        st.intents.insert(
            id.clone(),
            Intent::Peering {
                a: a.into(),
                b: b.into(),
                a_netns: va.netns.clone(),
                b_netns: vb.netns.clone(),
                link: link.clone(),
            },
        );
        if let Err(e) = self.save(&st) {
            st.intents.remove(&id);
            return Err(e);
        }
        let k = &self.inner.kernel;
        if let Err(e) = k.ip_batch(
            Some(&va.netns),
            &net::peering_setup(&link, &vb.netns, a_ip, vb.cidr, b_ip),
        ) {
            let _ = k.ip_batch(Some(&va.netns), &format!("link del {link}\n"));
            st.intents.remove(&id);
            let _ = self.save(&st);
            return Err(e.into());
        }
        let p = Peering {
            id: id.clone(),
            a: a.into(),
            b: b.into(),
            index,
        };
        st.peerings.insert(id.clone(), p.clone());
        let res = (|| -> Result<(), RuntimeError> {
            k.ip_batch(
                Some(&vb.netns),
                &net::peering_finish(&link, b_ip, va.cidr, a_ip),
            )?;
            k.nft_apply(
                Some(&va.netns),
                &net::router_rules(va.cidr, &st.peers_of(a)),
            )?;
            k.nft_apply(
                Some(&vb.netns),
                &net::router_rules(vb.cidr, &st.peers_of(b)),
            )?;
            Ok(())
        })();
        if let Err(e) = res {
            st.peerings.remove(&id);
            let _ = k.ip_batch(Some(&va.netns), &format!("link del {link}\n"));
            let _ = k.nft_apply(
                Some(&va.netns),
                &net::router_rules(va.cidr, &st.peers_of(a)),
            );
            let _ = k.nft_apply(
                Some(&vb.netns),
                &net::router_rules(vb.cidr, &st.peers_of(b)),
            );
            st.intents.remove(&id);
            let _ = self.save(&st);
            return Err(e);
        }
        st.intents.remove(&id);
        st.next_peer_index += 1;
        self.save(&st)?;
        Ok(p)
    }

    pub fn delete_peering(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let p = st.peerings.remove(id).ok_or_else(|| NetError::NotFound {
            kind: "peering",
            id: id.into(),
        })?;
        let k = &self.inner.kernel;
        let (va, vb) = (st.vpcs[&p.a].clone(), st.vpcs[&p.b].clone());
        k.ip_batch(Some(&va.netns), &format!("link del x{}\n", p.index))?;
        k.nft_apply(
            Some(&va.netns),
            &net::router_rules(va.cidr, &st.peers_of(&p.a)),
        )?;
        k.nft_apply(
            Some(&vb.netns),
            &net::router_rules(vb.cidr, &st.peers_of(&p.b)),
        )?;
        self.save(&st)
    }

    pub fn peerings(&self) -> Vec<Peering> {
        self.lock().peerings.values().cloned().collect()
    }
}
