// A real OpenID provider on loopback for Signoff's single sign-on tests (oidc-provider,
// pinned in package.json): one confidential client (the web app), PKCE required, the
// built-in dev login form (any password), and a few test accounts with groups.
//
// With CLI_CLIENT_ID set, a public native client for `signoff login` too: the device
// authorization grant (unless DEVICE_FLOW=0: then only the loopback redirect, any port
// on 127.0.0.1), refresh tokens, and access tokens that are JWTs for the resource
// RESOURCE (audience AUDIENCE, lifetime ACCESS_TTL seconds) carrying the account's
// groups, preferred_username and email. ACCOUNTS_FILE (JSON, accountId -> claims) is
// read again at every look-up, so a test can take a person out of a group.
//
//   PORT=9000 REDIRECT_URIS=http://app.signoff.test:8000/signin/oidc/callback node server.js
import fs from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 9000);
const issuer = process.env.ISSUER || `http://127.0.0.1:${port}`;
const redirectUris = (process.env.REDIRECT_URIS || '').split(',').filter(Boolean);
const cliClientId = process.env.CLI_CLIENT_ID || '';
const deviceFlow = process.env.DEVICE_FLOW !== '0';
const resource = process.env.RESOURCE || 'https://signoff.test';
const audience = process.env.AUDIENCE || cliClientId;
const accessTtl = Number(process.env.ACCESS_TTL || 300);

// accountId (the login name typed in the dev form) -> claims
const builtIn = {
  olga: { email: 'olga@example.com', preferred_username: 'olga', name: 'Olga O.', groups: ['idp-dba', 'idp-unmapped'] },
  bob: { email: 'bob@example.com', preferred_username: 'bob', name: 'Bob B.', groups: ['idp-security'] },
  nina: { email: 'nina@example.com', name: 'Nina N.', groups: [] },
};
const accounts = () => (
  process.env.ACCOUNTS_FILE ? JSON.parse(fs.readFileSync(process.env.ACCOUNTS_FILE, 'utf8')) : builtIn
);

const clients = [{
  client_id: process.env.CLIENT_ID || 'signoff',
  client_secret: process.env.CLIENT_SECRET || 'signoff-test-secret',
  redirect_uris: redirectUris,
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
}];
if (cliClientId) {
  clients.push({
    client_id: cliClientId,
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    redirect_uris: ['http://127.0.0.1/callback'],
    grant_types: [
      'authorization_code', 'refresh_token',
      ...(deviceFlow ? ['urn:ietf:params:oauth:grant-type:device_code'] : []),
    ],
    response_types: ['code'],
  });
}

const provider = new Provider(issuer, {
  clients,
  pkce: { required: () => true, methods: ['S256'] },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: deviceFlow && !!cliClientId },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: !!cliClientId,
      defaultResource: async (ctx, client, oneOf) => oneOf || resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({
        scope: 'signoff',
        audience,
        accessTokenFormat: 'jwt',
        accessTokenTTL: accessTtl,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'signoff'],
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  extraTokenClaims: async (ctx, token) => {
    const account = accounts()[token.accountId];
    if (!account || token.kind !== 'AccessToken') return undefined;
    return {
      groups: account.groups || [],
      ...(account.preferred_username ? { preferred_username: account.preferred_username } : {}),
      ...(account.email ? { email: account.email } : {}),
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name', 'groups'],
  },
  // The scopes' claims go in the ID token too, not only at the userinfo endpoint.
  conformIdTokenClaims: false,
  cookies: { keys: ['signoff-test-cookie-key'] },
  findAccount: async (ctx, id) => {
    const account = accounts()[id];
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
