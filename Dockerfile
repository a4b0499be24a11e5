# Both kubefim binaries in one distroless image. The chart runs /kubefim-operator as a non-root
# user and /kubefim-agent as root with only DAC_READ_SEARCH (see charts/kubefim).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p kubefim-agent -p kubefim-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kubefim-agent /kubefim-agent
COPY --from=build /src/target/release/kubefim-operator /kubefim-operator
USER 65532:65532
ENTRYPOINT ["/kubefim-agent"]
