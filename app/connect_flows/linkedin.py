"""LinkedIn: 3-legged OAuth; the member (OpenID userinfo) and the organisation pages the
member administers, each a separate account (several: the user picks on Crier)."""

from __future__ import annotations

from typing import Any

from app.oauth import ClientApp, ConnectedIdentity, OAuthFlow, expires_at, register_flow


@register_flow
class LinkedInFlow(OAuthFlow):
    platform = "linkedin"
    hosts = {
        "authorize": "www.linkedin.com",
        "oauth": "www.linkedin.com",
        "api": "api.linkedin.com",
    }
    scopes = (
        "openid",
        "profile",
        "w_member_social",
        "w_organization_social",
        "rw_organization_admin",
    )
    offers_choice = True
    has_revoke = True
    authorize_path = ("authorize", "/oauth/v2/authorization")

    def _headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "LinkedIn-Version": self.settings.linkedin_version,
            "X-Restli-Protocol-Version": "2.0.0",
        }

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        token = self.exchange_code(self.url("/oauth/v2/accessToken", "oauth"), client, code)
        access = token["access_token"]
        shared: dict[str, Any] = {
            "access_token": access,
            "refresh_token": token.get("refresh_token"),
            "expires_at": expires_at(token.get("expires_in")),
        }
        member = self.call(
            "GET", self.url("/v2/userinfo"), "reading the member", headers=self._headers(access)
        )
        found = [
            ConnectedIdentity(
                external_id=str(member["sub"]),
                name=member.get("name") or member["sub"],
                kind="member",
                **shared,
            )
        ]
        acls = self.call(
            "GET",
            self.url("/rest/organizationAcls"),
            "listing the member's pages",
            params={"q": "roleAssignee", "role": "ADMINISTRATOR", "state": "APPROVED"},
            headers=self._headers(access),
        )
        for element in acls.get("elements") or []:
            urn = str(element.get("organization") or "")
            if not urn.startswith("urn:li:organization:"):
                continue
            org_id = urn.rsplit(":", 1)[1]
            org = self.call(
                "GET",
                self.url(f"/rest/organizations/{org_id}"),
                "reading a page",
                headers=self._headers(access),
            )
            found.append(
                ConnectedIdentity(
                    external_id=urn,
                    name=org.get("localizedName") or urn,
                    kind="organization",
                    **shared,
                )
            )
        return found

    def revoke(self, client: ClientApp | None, identity_token: str) -> bool:
        data = {"token": identity_token}
        if client is not None:
            data |= {"client_id": client.client_id, "client_secret": client.client_secret or ""}
        self.call("POST", self.url("/oauth/v2/revoke", "oauth"), "the revoke call", data=data)
        return True
