"""A few S3 requests from the tests' side (Python's standard library only, AWS Signature Version
4, path-style): to look into a bucket, damage an object or leave an upload unfinished, the way
another program or a dying node would, independently of the C client under test."""
import datetime
import hashlib
import hmac
import re
import urllib.error
import urllib.parse
import urllib.request


class Client:
    def __init__(self, endpoint, access_key, secret_key, region='us-east-1'):
        self.endpoint = endpoint.rstrip('/')
        self.host = urllib.parse.urlparse(self.endpoint).netloc
        self.ak, self.sk, self.region = access_key, secret_key, region

    def _sign(self, method, path, query, headers, payload_hash):
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date, day = now.strftime('%Y%m%dT%H%M%SZ'), now.strftime('%Y%m%d')
        headers = dict(headers, host=self.host, **{'x-amz-date': amz_date,
                                                   'x-amz-content-sha256': payload_hash})
        names = sorted(k.lower() for k in headers)
        canon_headers = ''.join(f'{k}:{str(headers[k]).strip()}\n' for k in names)
        signed = ';'.join(names)
        canon_query = '&'.join(f'{urllib.parse.quote(k, safe="-_.~")}='
                               f'{urllib.parse.quote(v, safe="-_.~")}'
                               for k, v in sorted(query.items()))
        creq = '\n'.join([method, urllib.parse.quote(path, safe='/-_.~'), canon_query,
                          canon_headers, signed, payload_hash])
        scope = f'{day}/{self.region}/s3/aws4_request'
        sts = '\n'.join(['AWS4-HMAC-SHA256', amz_date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        key = ('AWS4' + self.sk).encode()
        for part in (day, self.region, 's3', 'aws4_request'):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        headers['Authorization'] = (f'AWS4-HMAC-SHA256 Credential={self.ak}/{scope}, '
                                    f'SignedHeaders={signed}, Signature={sig}')
        return headers, canon_query

    def request(self, method, bucket, key='', query=None, body=b''):
        path = '/' + bucket + ('/' + key if key else '')
        query = query or {}
        headers, cq = self._sign(method, path, query, {}, hashlib.sha256(body).hexdigest())
        url = self.endpoint + urllib.parse.quote(path, safe='/-_.~') + ('?' + cq if cq else '')
        req = urllib.request.Request(url, data=body if method in ('PUT', 'POST') else None,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def keys(self, bucket, prefix=''):
        """Every key under prefix (one page is plenty for a test)."""
        st, body = self.request('GET', bucket, query={'list-type': '2', 'prefix': prefix})
        assert st == 200, (st, body)
        return re.findall(r'<Key>([^<]*)</Key>', body.decode())

    def sizes(self, bucket, prefix=''):
        """{key: size} under prefix, following continuation tokens."""
        out, token = {}, None
        while True:
            q = {'list-type': '2', 'prefix': prefix}
            if token:
                q['continuation-token'] = token
            st, body = self.request('GET', bucket, query=q)
            assert st == 200, (st, body)
            t = body.decode()
            for k, n in re.findall(r'<Key>([^<]*)</Key>.*?<Size>(\d+)</Size>', t, re.S):
                out[k] = int(n)
            m = re.search(r'<NextContinuationToken>([^<]*)</NextContinuationToken>', t)
            if '<IsTruncated>true</IsTruncated>' not in t or not m:
                return out
            token = m.group(1)

    def get(self, bucket, key):
        st, body = self.request('GET', bucket, key)
        assert st == 200, (st, key, body[:200])
        return body

    def put(self, bucket, key, data):
        st, body = self.request('PUT', bucket, key, body=data)
        assert st == 200, (st, key, body[:200])

    def start_upload(self, bucket, key):
        """An upload begun and never completed, as a node that died mid-upload leaves it."""
        st, body = self.request('POST', bucket, key, query={'uploads': ''})
        assert st == 200, (st, body)
        return re.search(r'<UploadId>([^<]*)</UploadId>', body.decode()).group(1)

    def uploads(self, bucket):
        st, body = self.request('GET', bucket, query={'uploads': ''})
        assert st == 200, (st, body)
        return re.findall(r'<Key>([^<]*)</Key>', body.decode())

    def bucket_exists(self, bucket):
        return self.request('HEAD', bucket)[0] == 200
