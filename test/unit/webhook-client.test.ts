import { describe, expect, it } from 'vitest';
import { certificateNames } from '../../src/restore/webhook.ts';

describe('certificateNames (what --webhook-client-names is matched against)', () => {
  it('takes the subject CN and the DNS subject alternative names, not IPs or URIs', () => {
    expect(
      certificateNames({
        subject: { CN: 'kube-apiserver-webhook-client', O: 'system:masters' },
        subjectaltname: 'DNS:apiserver.example.com, IP Address:10.0.0.1, URI:spiffe://x, DNS:*.svc',
      }),
    ).toEqual(['kube-apiserver-webhook-client', 'apiserver.example.com', '*.svc']);
  });

  it('copes with no CN, several CNs and no SAN extension', () => {
    expect(certificateNames({ subject: { O: 'x' }, subjectaltname: undefined })).toEqual([]);
    expect(certificateNames({ subject: { CN: ['a', 'b'] }, subjectaltname: '' })).toEqual(['a', 'b']);
  });
});
