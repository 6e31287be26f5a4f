// Entry point 'tiercache/prometheus': the only module that loads prom-client (an optional peer dependency).
export { prometheusCollector, type PrometheusCollector, type PrometheusCollectorOptions } from './observe/prometheus-collector.js';
