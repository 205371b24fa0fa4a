// The restricted Pod Security Standard, every control of it (which includes
// every Baseline control), as https://kubernetes.io/docs/concepts/security/pod-security-standards/
// lists them for Kubernetes 1.34 and as the pod-security-admission checks in
// kubernetes/kubernetes (staging/src/k8s.io/pod-security-admission/policy)
// implement them. Each function returns the violations of one control.
// Windows-only pods (spec.os.name: windows) are exempt from some Linux
// controls; this chart's pods are Linux pods, so no exemption is applied.

type Obj = Record<string, unknown>;

export interface PodLike {
  readonly metadata?: { readonly annotations?: Readonly<Record<string, string>> };
  readonly spec: Obj;
}

/** A value as the findings show it: strings as they are, anything else as JSON. */
const show = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));

const get = (o: unknown, path: string): unknown =>
  path.split('.').reduce<unknown>((node, key) => (node && typeof node === 'object' ? (node as Obj)[key] : undefined), o);

/** containers, initContainers and ephemeralContainers, each with where it was found. */
function containersOf(spec: Obj): { where: string; c: Obj }[] {
  const out: { where: string; c: Obj }[] = [];
  for (const kind of ['containers', 'initContainers', 'ephemeralContainers']) {
    for (const c of (spec[kind] as Obj[] | undefined) ?? []) out.push({ where: `${kind}[${String(c.name)}]`, c });
  }
  return out;
}

/** Capabilities Baseline allows adding (the container runtimes' default set, minus NET_RAW). */
export const BASELINE_CAPABILITIES = [
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
];
/** Sysctls Baseline allows: the "safe" set, namespaced and isolated per pod (as of Kubernetes 1.32). */
export const SAFE_SYSCTLS = [
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
  'net.ipv4.tcp_rmem',
  'net.ipv4.tcp_wmem',
];
/** Volume types Restricted allows. */
export const RESTRICTED_VOLUME_TYPES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
const SELINUX_TYPES = ['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'];

type Control = (pod: PodLike) => string[];

/** Every control of the Restricted profile, Baseline's included, by the name the docs give it. */
export const RESTRICTED_CONTROLS: Readonly<Record<string, Control>> = {
  // ---- Baseline
  HostProcess: ({ spec }) => [
    ...(get(spec, 'securityContext.windowsOptions.hostProcess') === true ? ['spec.securityContext.windowsOptions.hostProcess is true'] : []),
    ...containersOf(spec)
      .filter(({ c }) => get(c, 'securityContext.windowsOptions.hostProcess') === true)
      .map(({ where }) => `${where}: windowsOptions.hostProcess is true`),
  ],
  'Host Namespaces': ({ spec }) => ['hostNetwork', 'hostPID', 'hostIPC'].filter((k) => spec[k] === true).map((k) => `spec.${k} is true`),
  'Privileged Containers': ({ spec }) =>
    containersOf(spec)
      .filter(({ c }) => get(c, 'securityContext.privileged') === true)
      .map(({ where }) => `${where}: privileged`),
  'Capabilities (Baseline)': ({ spec }) =>
    containersOf(spec).flatMap(({ where, c }) =>
      ((get(c, 'securityContext.capabilities.add') as string[] | undefined) ?? [])
        .filter((cap) => !BASELINE_CAPABILITIES.includes(cap))
        .map((cap) => `${where}: adds ${cap}`),
    ),
  'HostPath Volumes': ({ spec }) =>
    ((spec.volumes as Obj[] | undefined) ?? []).filter((v) => v.hostPath !== undefined).map((v) => `volume ${String(v.name)} is a hostPath`),
  'Host Ports': ({ spec }) =>
    containersOf(spec).flatMap(({ where, c }) =>
      ((c.ports as Obj[] | undefined) ?? []).filter((p) => p.hostPort !== undefined && p.hostPort !== 0).map((p) => `${where}: hostPort ${String(p.hostPort)}`),
    ),
  'Host Probes / Lifecycle Hooks': ({ spec }) =>
    containersOf(spec).flatMap(({ where, c }) =>
      ['livenessProbe', 'readinessProbe', 'startupProbe', 'lifecycle.postStart', 'lifecycle.preStop'].flatMap((handler) =>
        ['httpGet', 'tcpSocket']
          .map((action) => get(c, `${handler}.${action}.host`))
          .filter((host) => host !== undefined && host !== '')
          .map((host) => `${where}: ${handler} reaches host ${String(host)}`),
      ),
    ),
  AppArmor: ({ metadata, spec }) => [
    ...[{ where: 'spec', sc: spec.securityContext }, ...containersOf(spec).map(({ where, c }) => ({ where, sc: c.securityContext }))]
      .filter(({ sc }) => {
        const type = get(sc, 'appArmorProfile.type');
        return type !== undefined && type !== 'RuntimeDefault' && type !== 'Localhost';
      })
      .map(({ where, sc }) => `${where}: appArmorProfile ${String(get(sc, 'appArmorProfile.type'))}`),
    ...Object.entries(metadata?.annotations ?? {})
      .filter(([k, v]) => k.startsWith('container.apparmor.security.beta.kubernetes.io/') && v !== '' && v !== 'runtime/default' && !v.startsWith('localhost/'))
      .map(([k, v]) => `annotation ${k}=${v}`),
  ],
  SELinux: ({ spec }) =>
    [{ where: 'spec', sc: spec.securityContext }, ...containersOf(spec).map(({ where, c }) => ({ where, sc: c.securityContext }))].flatMap(({ where, sc }) => {
      const opts = get(sc, 'seLinuxOptions') as Obj | undefined;
      if (!opts) return [];
      return [
        ...(opts.type !== undefined && !SELINUX_TYPES.includes(show(opts.type)) ? [`${where}: seLinuxOptions.type ${show(opts.type)}`] : []),
        ...(['user', 'role'] as const).filter((k) => opts[k] !== undefined && opts[k] !== '').map((k) => `${where}: seLinuxOptions.${k} is set`),
      ];
    }),
  '/proc Mount Type': ({ spec }) =>
    containersOf(spec)
      .filter(({ c }) => ![undefined, 'Default'].includes(get(c, 'securityContext.procMount') as string | undefined))
      .map(({ where, c }) => `${where}: procMount ${show(get(c, 'securityContext.procMount'))}`),
  'Seccomp (Baseline)': ({ spec }) =>
    [{ where: 'spec', sc: spec.securityContext }, ...containersOf(spec).map(({ where, c }) => ({ where, sc: c.securityContext }))]
      .filter(({ sc }) => get(sc, 'seccompProfile.type') === 'Unconfined')
      .map(({ where }) => `${where}: seccompProfile Unconfined`),
  Sysctls: ({ spec }) =>
    ((get(spec, 'securityContext.sysctls') as Obj[] | undefined) ?? [])
      .filter((s) => !SAFE_SYSCTLS.includes(String(s.name)))
      .map((s) => `sysctl ${String(s.name)}`),
  // ---- Restricted
  'Volume Types': ({ spec }) =>
    ((spec.volumes as Obj[] | undefined) ?? [])
      .filter((v) => !Object.keys(v).some((k) => RESTRICTED_VOLUME_TYPES.includes(k)))
      .map(
        (v) =>
          `volume ${String(v.name)} is of type ${Object.keys(v)
            .filter((k) => k !== 'name')
            .join(', ')}`,
      ),
  'Privilege Escalation': ({ spec }) =>
    containersOf(spec)
      .filter(({ c }) => get(c, 'securityContext.allowPrivilegeEscalation') !== false)
      .map(({ where }) => `${where}: allowPrivilegeEscalation is not false`),
  'Running as Non-root': ({ spec }) => {
    const pod = get(spec, 'securityContext.runAsNonRoot');
    return [
      ...(pod === false ? ['spec.securityContext.runAsNonRoot is false'] : []),
      ...containersOf(spec)
        .filter(({ c }) => {
          const own = get(c, 'securityContext.runAsNonRoot');
          return own === false || (own === undefined && pod !== true);
        })
        .map(({ where }) => `${where}: runAsNonRoot is not true`),
    ];
  },
  'Running as Non-root user': ({ spec }) => [
    ...(get(spec, 'securityContext.runAsUser') === 0 ? ['spec.securityContext.runAsUser is 0'] : []),
    ...containersOf(spec)
      .filter(({ c }) => get(c, 'securityContext.runAsUser') === 0)
      .map(({ where }) => `${where}: runAsUser is 0`),
  ],
  'Seccomp (Restricted)': ({ spec }) => {
    const allowed = (type: unknown): boolean => type === 'RuntimeDefault' || type === 'Localhost';
    const pod = get(spec, 'securityContext.seccompProfile.type');
    return [
      ...(pod !== undefined && !allowed(pod) ? [`spec: seccompProfile ${show(pod)}`] : []),
      ...containersOf(spec)
        .filter(({ c }) => {
          const own = get(c, 'securityContext.seccompProfile.type');
          return own === undefined ? !allowed(pod) : !allowed(own);
        })
        .map(({ where, c }) => `${where}: seccompProfile ${show(get(c, 'securityContext.seccompProfile.type') ?? 'unset, and the pod sets none')}`),
    ];
  },
  'Capabilities (Restricted)': ({ spec }) =>
    containersOf(spec).flatMap(({ where, c }) => {
      const caps = (get(c, 'securityContext.capabilities') as { drop?: string[]; add?: string[] } | undefined) ?? {};
      return [
        ...((caps.drop ?? []).includes('ALL') ? [] : [`${where}: does not drop ALL capabilities`]),
        ...(caps.add ?? []).filter((cap) => cap !== 'NET_BIND_SERVICE').map((cap) => `${where}: adds ${cap}`),
      ];
    }),
};

/** Every violation of the restricted profile, as "control: detail". */
export function restrictedViolations(pod: PodLike): string[] {
  return Object.entries(RESTRICTED_CONTROLS).flatMap(([control, check]) => check(pod).map((detail) => `${control}: ${detail}`));
}
