// A real OpenID provider on loopback for Signoff's single sign-on tests (oidc-provider,
// pinned in package.json): one confidential client, PKCE required, the built-in dev
// login form (any password), and a few test accounts with groups.
//
//   PORT=9000 REDIRECT_URIS=http://app.signoff.test:8000/signin/oidc/callback node server.js
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 9000);
const issuer = process.env.ISSUER || `http://127.0.0.1:${port}`;
const redirectUris = (process.env.REDIRECT_URIS || '').split(',').filter(Boolean);

// accountId (the login name typed in the dev form) -> claims
const accounts = {
  olga: { email: 'olga@example.com', preferred_username: 'olga', name: 'Olga O.', groups: ['idp-dba', 'idp-unmapped'] },
  bob: { email: 'bob@example.com', preferred_username: 'bob', name: 'Bob B.', groups: ['idp-security'] },
  nina: { email: 'nina@example.com', name: 'Nina N.', groups: [] },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID || 'signoff',
    client_secret: process.env.CLIENT_SECRET || 'signoff-test-secret',
    redirect_uris: redirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true, methods: ['S256'] },
  features: { devInteractions: { enabled: true } },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name', 'groups'],
  },
  // The scopes' claims go in the ID token too, not only at the userinfo endpoint.
  conformIdTokenClaims: false,
  cookies: { keys: ['signoff-test-cookie-key'] },
  findAccount: async (ctx, id) => {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      claims: async () => ({ sub: `sub-${id}`, email_verified: true, ...account }),
    };
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening at ${issuer}`);
});
